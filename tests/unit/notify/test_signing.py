"""Webhook signatures: round trip, tampering, expiry, malformed headers, secret rotation."""

from __future__ import annotations

import pytest

from dispatcher.notify.signing import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    compute_signature,
    is_valid,
    sign_headers,
    verify,
)

SECRET = "whsec-test-0123456789abcdef"
BODY = b'{"page_id":"p-1","citizen_id":"cit-7f3a9c","severity":"high"}'
T = 1_795_000_000


def _headers(body: bytes = BODY, secret: str = SECRET, t: int = T) -> dict[str, str]:
    return sign_headers(secret, body, "key-1", 3, t)


def _reason(
    headers: dict[str, str], body: bytes = BODY, now: float = T, tolerance_s: float = 300
) -> str:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, headers, body, tolerance_s, now=now)
    return info.value.reason


class TestHeaders:
    def test_all_delivery_headers_are_set(self) -> None:
        """Signature, idempotency key, attempt number and content type travel together."""
        h = _headers()
        assert h["Content-Type"] == "application/json"
        assert h[IDEMPOTENCY_HEADER] == "key-1"
        assert h[ATTEMPT_HEADER] == "3"
        assert h[SIGNATURE_HEADER] == f"t={T},v1={compute_signature(SECRET, T, BODY)}"

    def test_signature_covers_timestamp_and_body(self) -> None:
        """Changing either the timestamp or one byte of the body changes the signature."""
        base = compute_signature(SECRET, T, BODY)
        assert compute_signature(SECRET, T + 1, BODY) != base
        assert compute_signature(SECRET, T, BODY + b" ") != base
        assert len(base) == 64  # hex SHA-256


class TestVerify:
    def test_valid_signature_verifies(self) -> None:
        """A request signed with the shared secret passes, with header names in any case."""
        h = {k.lower(): v for k, v in _headers().items()}
        verify(SECRET, h, BODY, 300, now=T + 10)
        assert is_valid(SECRET, h, BODY, 300, now=T + 10)

    def test_tampered_body_is_rejected(self) -> None:
        """A body altered in transit no longer matches."""
        tampered = BODY.replace(b"high", b"low")
        assert _reason(_headers(), body=tampered) == "mismatch"

    def test_wrong_secret_is_rejected(self) -> None:
        """A request signed with another team's secret does not verify."""
        assert _reason(_headers(secret="another-team-secret-0000")) == "mismatch"

    def test_replayed_timestamp_is_rejected(self) -> None:
        """A captured request re-sent after the tolerance window is refused as expired."""
        assert _reason(_headers(), now=T + 301) == "expired"
        assert _reason(_headers(), now=T - 301) == "expired"  # too far in the future too
        assert not is_valid(SECRET, _headers(), BODY, 300, now=T + 301)

    def test_forged_timestamp_breaks_the_signature(self) -> None:
        """Moving t= forward to dodge expiry invalidates the signature."""
        h = _headers()
        h[SIGNATURE_HEADER] = h[SIGNATURE_HEADER].replace(f"t={T}", f"t={T + 1000}")
        assert _reason(h, now=T + 1000) == "mismatch"

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("v1=abc", "malformed"),
            (f"t={T}", "malformed"),
            ("t=yesterday,v1=abc", "malformed"),
            ("garbage", "malformed"),
        ],
    )
    def test_malformed_header_is_rejected(self, value: str, reason: str) -> None:
        """A header without timestamp or signature is malformed, never accepted."""
        assert _reason({SIGNATURE_HEADER: value}) == reason

    def test_missing_header_is_rejected(self) -> None:
        """No signature header at all is its own reason."""
        assert _reason({"Content-Type": "application/json"}) == "missing"

    def test_rotation_accepts_any_matching_v1(self) -> None:
        """During a secret rotation the header may carry an old and a new signature."""
        old = compute_signature("old-secret-0000000000", T, BODY)
        new = compute_signature(SECRET, T, BODY)
        verify(SECRET, {SIGNATURE_HEADER: f"t={T},v1={old},v1={new}"}, BODY, 300, now=T)
        assert not is_valid(SECRET, {SIGNATURE_HEADER: f"t={T},v1={old}"}, BODY, 300, now=T)
