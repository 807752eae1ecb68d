"""Decoding raw bytes: every failure names a field and a reason; nothing raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.contract.topics import NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.decoding import MAX_MESSAGE_BYTES, Decoded, Rejected, decode
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _bytes(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


class TestRejections:
    @pytest.mark.parametrize(
        ("raw", "fragment"),
        [
            (None, "empty"),
            (b"", "empty"),
            (b"\xff\xfe\x00", "UTF-8"),
            (b"{not json", "JSON"),
            (b"[1, 2]", "object"),
            (b"x" * (MAX_MESSAGE_BYTES + 1), "limit"),
        ],
    )
    def test_malformed_bytes_are_rejected_as_a_whole(
        self, raw: bytes | None, fragment: str
    ) -> None:
        """Bytes that are not one JSON object are rejected with field '$' and a reason."""
        result = decode(NURSE_OBSERVATIONS, raw, NOW)
        assert isinstance(result, Rejected)
        assert result.errors[0].field == "$"
        assert fragment in result.errors[0].reason

    def test_wrong_type_names_the_field(self) -> None:
        """A wrong-typed vital names that vital."""
        body = helpers.observation("cit-abc123", NOW, pulse="fast")
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["pulse"]
        assert str(result.event_id) == body["event_id"]

    def test_unknown_schema_version_is_named(self) -> None:
        """An unsupported schema_version is rejected naming the versions we support."""
        body = helpers.observation("cit-abc123", NOW)
        body["schema_version"] = 7
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert result.errors[0].field == "schema_version"
        assert "supported: 1" in result.errors[0].reason

    def test_future_timestamp_is_rejected(self) -> None:
        """An event from more than ten minutes in the future is rejected."""
        body = helpers.observation("cit-abc123", NOW + timedelta(hours=2))
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert result.errors[0].field == "occurred_at"

    def test_ancient_timestamp_is_rejected(self) -> None:
        """An event older than a year is rejected."""
        body = helpers.observation("cit-abc123", NOW - timedelta(days=400))
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert "older" in result.errors[0].reason

    def test_error_reason_does_not_echo_input_values(self) -> None:
        """Validation reasons never repeat the offending value (it may be health data)."""
        body = helpers.observation("cit-abc123", NOW, note=123)
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert "123" not in result.errors[0].reason


class TestAccepts:
    def test_valid_sensor_reading_is_decoded(self) -> None:
        """A valid reading decodes to its model."""
        body = helpers.sensor("cit-abc123", "spo2", 91, "%", NOW)
        result = decode(SENSOR_READINGS, _bytes(body), NOW)
        assert isinstance(result, Decoded)
        assert result.event.citizen_id == "cit-abc123"


class TestFuzz:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=512))
    def test_arbitrary_bytes_never_raise(self, raw: bytes) -> None:
        """Any bytes decode to an event or to field errors; never an exception."""
        result = decode(NURSE_OBSERVATIONS, raw, NOW)
        assert isinstance(result, Decoded | Rejected)
        if isinstance(result, Rejected):
            assert result.errors
            assert all(e.field and e.reason for e in result.errors)

    @settings(max_examples=300, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "event_id",
                    "schema_version",
                    "occurred_at",
                    "source",
                    "citizen_id",
                    "spo2",
                    "pulse",
                    "observer",
                    "temperature",
                    "consciousness",
                    "worried",
                ]
            ),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
        )
    )
    def test_arbitrary_objects_never_raise(self, body: dict[str, object]) -> None:
        """Any JSON object decodes to an event or to field errors naming fields."""
        raw = json.dumps(body).encode()
        result = decode(NURSE_OBSERVATIONS, raw, NOW)
        assert isinstance(result, Decoded | Rejected)
