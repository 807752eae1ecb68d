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

    def test_a_publisher_cannot_send_the_dropped_list(self) -> None:
        """``dropped`` is ours: an observation that brings its own is refused naming the field,
        so it cannot make the re-measure rule fire for a vital nobody sent."""
        obs = helpers.observation(helpers.citizen(), NOW)
        obs["dropped"] = [{"field": "spo2", "reason": "made up"}]
        result = decode(NURSE_OBSERVATIONS, _bytes(obs), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["dropped"]
        obs["dropped"] = []
        assert isinstance(decode(NURSE_OBSERVATIONS, _bytes(obs), NOW), Decoded)

    def test_wrong_type_vital_is_dropped_not_rejected(self) -> None:
        """A wrong-typed vital is dropped naming that vital and why; the observation is still
        accepted with its other vitals (issue 12 item 4: never a dead letter for one value)."""
        body = helpers.observation("cit-abc123", NOW, pulse="fast")
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Decoded)
        event = result.event
        assert str(event.event_id) == body["event_id"]
        assert [d.field for d in event.dropped] == ["pulse"]  # type: ignore[union-attr]
        assert "valid number" in event.dropped[0].reason  # type: ignore[union-attr]
        assert event.pulse is None  # type: ignore[union-attr]
        assert event.spo2 == body["spo2"]  # type: ignore[union-attr]

    def test_wrong_type_of_a_non_vital_still_names_the_field(self) -> None:
        """A wrong type outside the vitals (worried) still refuses the message, naming it."""
        body = helpers.observation("cit-abc123", NOW, pulse="fast", worried="maybe")
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["pulse", "worried"]
        assert str(result.event_id) == body["event_id"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("spo2", 88.5), ("temperature", 37.85), ("respiration_rate", 18.5), ("pulse", 72.4)],
    )
    def test_decimals_are_accepted_as_measured(self, field: str, value: float) -> None:
        """Decimals as devices send them are accepted and kept as measured."""
        body = helpers.observation("cit-abc123", NOW, **{field: value})
        result = decode(NURSE_OBSERVATIONS, _bytes(body), NOW)
        assert isinstance(result, Decoded)
        assert getattr(result.event, field) == value
        assert result.event.dropped == []  # type: ignore[union-attr]

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
