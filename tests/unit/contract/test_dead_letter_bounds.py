"""Issue 11 item 1: every dead letter is bounded in size (key included) and carries no CPR."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.contract.events import FieldError
from dispatcher.contract.excerpt import excerpt, redact_cpr
from dispatcher.contract.topics import NURSE_OBSERVATIONS
from dispatcher.contract.vocab import CPR_PATTERN, DeadLetterCategory
from dispatcher.ingest.planner import (
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_ORIGINAL,
    BatchPlan,
    Incoming,
    decode_batch,
    make_dead_letter,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
# What the broker accepts by default; a dead letter must always fit with room to spare.
BROKER_LIMIT = 1_000_000


def _letter(key: bytes | None, value: bytes | None, reason: str = "bad") -> BatchPlan:
    msg = Incoming(NURSE_OBSERVATIONS, 0, 7, key, value)
    letter = make_dead_letter(
        msg, [FieldError(field="$", reason=reason)], NOW, None, DeadLetterCategory.MALFORMED
    )
    return BatchPlan(dead_letters=[letter])


class TestExcerpt:
    def test_short_clean_bytes_are_kept_whole(self) -> None:
        e = excerpt(b"cit-000123", 1024)
        assert e.kept == b"cit-000123"
        assert (e.size, e.truncated, e.redacted) == (10, False, False)
        assert e.sha256 == hashlib.sha256(b"cit-000123").hexdigest()

    def test_cpr_is_replaced_keeping_the_length(self) -> None:
        e = excerpt(b'{"citizen_id": "010203-1234"}', 1024)
        assert e.kept == b'{"citizen_id": "###########"}'
        assert e.redacted
        assert not e.truncated

    def test_cpr_cut_by_the_limit_is_still_redacted(self) -> None:
        data = b"x" * 10 + b"0102031234" + b"y" * 10
        e = excerpt(data, 14)  # the cut falls inside the number
        assert e.kept == b"x" * 10 + b"####"
        assert e.truncated
        assert e.redacted

    def test_cutting_a_longer_digit_run_does_not_leave_a_cpr(self) -> None:
        # 11 digits are no CPR, but their first 10 are one once the cut drops the 11th.
        e = excerpt(b"01020312345", 10)
        assert CPR_PATTERN.search(e.kept.decode("latin-1")) is None

    def test_size_and_hash_are_of_the_whole_original(self) -> None:
        data = bytes(range(256)) * 1000
        e = excerpt(data, 100)
        assert len(e.kept) == 100
        assert e.size == len(data)
        assert e.sha256 == hashlib.sha256(data).hexdigest()

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from([b"010203-1234", b"3112991234", b"0101011111", b"-", b"9"]),
            ),
            max_size=30,
        ),
        st.integers(min_value=0, max_value=120),
    )
    def test_never_longer_than_the_limit_and_never_a_cpr(
        self, parts: list[bytes], limit: int
    ) -> None:
        data = b"".join(parts)
        e = excerpt(data, limit)
        assert len(e.kept) <= limit
        assert CPR_PATTERN.search(e.kept.decode("latin-1")) is None
        assert e.truncated == (len(e.kept) < len(data))
        if not e.redacted:
            assert e.kept == data[: len(e.kept)]

    def test_redact_cpr_leaves_other_numbers(self) -> None:
        assert (
            redact_cpr("offset 1717171717 and 010203-1234") == "offset 1717171717 and ###########"
        )


class TestDeadLetterIsBounded:
    def test_800_kb_key_and_1_mb_value_make_a_small_dead_letter(self) -> None:
        """The attack from issue 11: a huge key made a dead letter the broker refused."""
        key = b"k" * 800_000
        value = b'{"pad": "' + b"x" * 1_000_000 + b'"}'
        plan = _letter(key, value, reason="r" * 100_000)
        (out,) = plan.outbox()
        letter = plan.dead_letters[0]
        assert out.key is not None
        assert len(out.key) == MAX_DEAD_LETTER_KEY
        assert len(out.key) + len(out.value) < 200_000 < BROKER_LIMIT
        assert letter.key_size == len(key)
        assert letter.key_sha256 == hashlib.sha256(key).hexdigest()
        assert letter.key_truncated
        assert letter.original_size == len(value)
        assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
        assert letter.original_truncated
        assert len(base64.b64decode(letter.original_b64)) == MAX_DEAD_LETTER_ORIGINAL
        assert len(letter.error.reason) <= 500

    def test_many_errors_are_capped(self) -> None:
        msg = Incoming(NURSE_OBSERVATIONS, 0, 7, b"k", b"{}")
        errors = [FieldError(field=f"f{i}", reason="x") for i in range(10_000)]
        letter = make_dead_letter(msg, errors, NOW, None, DeadLetterCategory.VALIDATION)
        assert len(letter.errors) == 20

    def test_no_cpr_anywhere_in_the_dead_letter(self) -> None:
        """A CPR number in the key, the value and an error reason is redacted in all three."""
        cpr = "010203-1234"
        value = f'{{"citizen_id": "{cpr}", "note": "CPR {cpr}"}}'.encode()
        plan = _letter(cpr.encode(), value, reason=f"rule error: saw {cpr}")
        (out,) = plan.outbox()
        letter = plan.dead_letters[0]
        assert letter.key_redacted
        assert letter.original_redacted
        assert cpr not in out.value.decode()
        assert out.key is not None
        assert cpr.encode() not in out.key
        for b64 in (letter.key_b64, letter.original_b64):
            assert b64 is not None
            assert CPR_PATTERN.search(base64.b64decode(b64).decode("latin-1")) is None
        assert CPR_PATTERN.search(letter.error.reason) is None
        # Identification survives: size and hash are of the unredacted original.
        assert letter.original_sha256 == hashlib.sha256(value).hexdigest()

    def test_decoder_rejection_of_a_cpr_id_is_redacted(self) -> None:
        raw = b'{"event_id": "x", "citizen_id": "010203-1234"}'
        _, dead = decode_batch([Incoming(NURSE_OBSERVATIONS, 0, 1, b"010203-1234", raw)], NOW)
        (letter,) = dead
        assert letter.original_redacted
        assert b"010203-1234" not in base64.b64decode(letter.original_b64)

    def test_no_key_stays_null(self) -> None:
        letter = _letter(None, b"x").dead_letters[0]
        assert letter.key_b64 is None
        assert letter.key_size is None
        assert letter.key_sha256 is None
        (out,) = BatchPlan(dead_letters=[letter]).outbox()
        assert out.key is None
