"""Webhook signatures: HMAC-SHA256 over ``"<unix timestamp>.<body>"`` (Stripe's scheme).

Why this shape: signing the timestamp together with the body lets a receiver reject a captured
request replayed later (the timestamp is outside its tolerance) without keeping state, and
signing the exact bytes sent means no JSON canonicalisation question can arise. The header may
carry several ``v1=`` values so that a receiver can accept during a secret rotation.

The ``Idempotency-Key`` header is the page id: the same on every retry of one page, so a
receiver that saw a key already answers 2xx without paging its staff twice.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from dispatcher.errors import PermanentError

SIGNATURE_HEADER = "X-Dispatcher-Signature"
ATTEMPT_HEADER = "X-Dispatcher-Delivery-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0


class SignatureError(PermanentError, ValueError):
    """A request whose signature header is missing, malformed, too old or does not match.

    ``reason`` is one of ``missing``, ``malformed``, ``expired``, ``mismatch`` so that a
    receiver can count rejections by cause without logging the request.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>." + body`` under ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_headers(
    secret: str, body: bytes, idempotency_key: str, attempt: int, timestamp: int
) -> dict[str, str]:
    """Every header a delivery carries; the timestamp is passed in (the caller owns the clock)."""
    sig = compute_signature(secret, timestamp, body)
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"t={timestamp},{SCHEME}={sig}",
        IDEMPOTENCY_HEADER: idempotency_key,
        ATTEMPT_HEADER: str(attempt),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup: HTTP header names are case-insensitive, a plain dict is not."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_signature_header(value: str) -> tuple[int, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=<hex>...]`` -> (timestamp, signatures); unknown schemes ignored."""
    timestamp: int | None = None
    sigs: list[str] = []
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed", "signature header item without '='")
        if key == "t":
            if not val.isdigit():
                raise SignatureError("malformed", "signature timestamp is not a unix time")
            timestamp = int(val)
        elif key == SCHEME:
            sigs.append(val)
    if timestamp is None:
        raise SignatureError("malformed", "signature header has no timestamp")
    if not sigs:
        raise SignatureError("malformed", f"signature header has no {SCHEME} signature")
    return timestamp, sigs


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received request; raise ``SignatureError`` when it must be rejected.

    The timestamp must lie within ``tolerance_s`` of ``now`` (default: the wall clock) in
    either direction, and one ``v1`` signature must match in constant time.
    """
    value = _header(headers, SIGNATURE_HEADER)
    if value is None:
        raise SignatureError("missing", f"no {SIGNATURE_HEADER} header")
    timestamp, sigs = parse_signature_header(value)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("expired", "signature timestamp outside the tolerance")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise SignatureError("mismatch", "no signature matches the body")


def is_valid(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """``verify`` as a boolean, for receivers that only need yes or no."""
    try:
        verify(secret, headers, body, tolerance_s, now)
    except SignatureError:
        return False
    return True
