"""Issue 11 item 5: a strict contract - no coercion, no duplicate keys, ids matched whole, and
the Kafka key equal to the body's citizen_id (pure: contract, decoding, planner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest import decoding
from dispatcher.ingest.decoding import MESSAGE_KEY, Decoded, Rejected, decode, duplicate_key
from dispatcher.ingest.planner import Incoming, decode_batch
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CID = "cit-abcx12345"


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _rejected(topic: str, raw: bytes) -> Rejected:
    result = decode(topic, raw, NOW)
    assert isinstance(result, Rejected), result
    return result


def _obs(**over: Any) -> dict[str, Any]:
    body = helpers.observation(CID, NOW)
    body.update(over)
    return body


class TestNoCoercion:
    @pytest.mark.parametrize("value", ["88", True, "88.5", False])
    def test_a_vital_that_is_not_a_json_number_is_dropped_with_its_reason(
        self, value: object
    ) -> None:
        """ "spo2": "88" was read as 88 (lax mode); now, like "high", it is dropped with its
        reason and the rest of the observation is assessed."""
        result = decode(NURSE_OBSERVATIONS, _raw(_obs(spo2=value, respiration_rate=30)), NOW)
        assert isinstance(result, Decoded)
        obs = result.event
        assert obs.spo2 is None  # type: ignore[union-attr]
        assert [d.field for d in obs.dropped] == ["spo2"]  # type: ignore[union-attr]
        assert "number" in obs.dropped[0].reason  # type: ignore[union-attr]
        assert obs.respiration_rate == 30  # type: ignore[union-attr]

    def test_integers_and_decimals_are_numbers(self) -> None:
        """88 and 88.5 are JSON numbers: accepted as measured."""
        for value in (88, 88.5):
            result = decode(NURSE_OBSERVATIONS, _raw(_obs(spo2=value)), NOW)
            assert isinstance(result, Decoded)
            assert result.event.spo2 == value  # type: ignore[union-attr]

    @pytest.mark.parametrize("value", ["88", True])
    def test_a_sensor_value_that_is_not_a_number_is_refused(self, value: object) -> None:
        """A reading's value "88" or true is a field error on value (nothing else to assess)."""
        body = helpers.sensor(CID, "spo2", 0, "%", NOW)
        body["value"] = value
        result = _rejected(SENSOR_READINGS, _raw(body))
        assert [e.field for e in result.errors] == ["value"]

    @pytest.mark.parametrize("value", ["yes", "true", 1, 0])
    def test_worried_must_be_a_json_boolean(self, value: object) -> None:
        """ "yes", "true", 1 and 0 are not booleans: worried is refused, naming it."""
        result = _rejected(NURSE_OBSERVATIONS, _raw(_obs(worried=value)))
        assert [e.field for e in result.errors] == ["worried"]
        assert "boolean" in result.errors[0].reason

    def test_on_oxygen_that_is_not_a_boolean_is_dropped(self) -> None:
        """on_oxygen is a droppable vital: "true" is dropped with its reason."""
        result = decode(NURSE_OBSERVATIONS, _raw(_obs(on_oxygen="true")), NOW)
        assert isinstance(result, Decoded)
        assert [d.field for d in result.event.dropped] == ["on_oxygen"]  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        "value",
        [1763726400, "1763726400", 1763726400.5, "2026-11-21 12:00:00+00:00", "2026-11-21"],
    )
    def test_occurred_at_must_be_an_rfc_3339_string(self, value: object) -> None:
        """A unix time (number or digits) or another date format is not a timestamp."""
        result = _rejected(NURSE_OBSERVATIONS, _raw(_obs(occurred_at=value)))
        assert [e.field for e in result.errors] == ["occurred_at"]
        assert "RFC 3339" in result.errors[0].reason

    @pytest.mark.parametrize(
        "value",
        ["2026-11-21T11:00:00Z", "2026-11-21T11:00:00.123456+01:00", "2026-11-21t11:00:00z"],
    )
    def test_rfc_3339_forms_are_accepted(self, value: str) -> None:
        """Z or an offset, fractions, lower-case t/z (RFC 3339 allows them)."""
        assert isinstance(decode(NURSE_OBSERVATIONS, _raw(_obs(occurred_at=value)), NOW), Decoded)

    def test_discharge_timestamps_are_strict_too(self) -> None:
        """discharged_at and a follow-up's due_by as unix times are field errors."""
        body = helpers.discharge(CID, NOW)
        body["discharged_at"] = 1763726400
        body["follow_up"] = [{"action": "visit", "due_by": 1763726400}]
        result = _rejected(DISCHARGES, _raw(body))
        assert [e.field for e in result.errors] == ["discharged_at", "follow_up.0.due_by"]

    @pytest.mark.parametrize("value", [True, 1.0])
    def test_schema_version_must_be_the_integer_1(self, value: object) -> None:
        """true and 1.0 are not the version 1."""
        result = _rejected(NURSE_OBSERVATIONS, _raw(_obs(schema_version=value)))
        assert result.errors[0].field == "schema_version"

    @pytest.mark.parametrize(
        "value",
        [
            "{7d1f0c2e-0000-4000-8000-000000000001}",
            "7d1f0c2e000040008000000000000001",
            "urn:uuid:7d1f0c2e-0000-4000-8000-000000000001",
        ],
    )
    def test_event_id_must_be_a_canonical_uuid(self, value: str) -> None:
        """Other spellings of a UUID are refused: one event, one id text."""
        result = _rejected(NURSE_OBSERVATIONS, _raw(_obs(event_id=value)))
        assert result.errors[0].field == "event_id"


class TestIdsMatchedWhole:
    @pytest.mark.parametrize("field", ["citizen_id", "observer"])
    def test_a_trailing_newline_is_not_part_of_an_id(self, field: str) -> None:
        """`$` matched before a final newline: "cit-abc123\\n" passed as an id. fullmatch."""
        result = _rejected(NURSE_OBSERVATIONS, _raw(_obs(**{field: "cit-abc123\n"})))
        assert [e.field for e in result.errors] == [field]

    def test_device_id_flags_and_diagnoses_are_matched_whole(self) -> None:
        """The same for a device id, a flag and a diagnosis code."""
        reading = helpers.sensor(CID, "spo2", 95, "%", NOW)
        reading["device_id"] = "dev-1\n"
        assert _rejected(SENSOR_READINGS, _raw(reading)).errors[0].field == "device_id"
        dis = helpers.discharge(CID, NOW, flags=["palliative\n"], diagnoses=["J44.1\n"])
        assert {e.field for e in _rejected(DISCHARGES, _raw(dis)).errors} == {
            "flags.0",
            "diagnoses.0",
        }


class TestDuplicateKeys:
    def test_a_repeated_vital_is_refused_naming_it(self) -> None:
        """{"spo2": 97, ..., "spo2": 80}: orjson would keep 80 silently. Refused, naming spo2."""
        raw = _raw(_obs(spo2=97))[:-1] + b', "spo2": 80}'
        result = _rejected(NURSE_OBSERVATIONS, raw)
        assert [e.field for e in result.errors] == ["spo2"]
        assert "duplicate key" in result.errors[0].reason
        assert result.event_id is not None

    def test_a_repeated_event_id_leaves_the_event_id_unknown(self) -> None:
        """Which event id was meant is unknown: the dead letter carries none."""
        raw = _raw(_obs())[:-1] + b', "event_id": "7d1f0c2e-0000-4000-8000-000000000001"}'
        result = _rejected(NURSE_OBSERVATIONS, raw)
        assert result.errors[0].field == "event_id"
        assert result.event_id is None

    def test_nested_and_escaped_duplicates_are_found(self) -> None:
        """A repeated key in a follow-up, and "sp\\u006f2" repeating "spo2" (the same key
        once unescaped), are found too."""
        dis = helpers.discharge(CID, NOW)
        dis["follow_up"] = [{"action": "visit"}]
        raw = _raw(dis).replace(b'{"action": "visit"}', b'{"action": "visit", "action": "x"}')
        assert _rejected(DISCHARGES, raw).errors[0].field == "action"
        escaped = _raw(_obs(spo2=97))[:-1] + b', "sp\\u006f2": 80}'
        assert _rejected(NURSE_OBSERVATIONS, escaped).errors[0].field == "spo2"

    def test_the_hot_path_does_not_parse_twice(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A normal message (timestamps full of colons, colons in free text) is cleared by
        counting alone: the second parse is never called."""

        def boom(raw: bytes) -> str | None:
            raise AssertionError("slow path taken")

        monkeypatch.setattr(decoding, "_first_repeated_key", boom)
        body = _obs(note="at 10:30: fine; ratio 1:2 ::")
        assert isinstance(decode(NURSE_OBSERVATIONS, _raw(body), NOW), Decoded)
        dis = helpers.discharge(CID, NOW, follow_up=[{"action": "call at 09:00"}])
        assert isinstance(decode(DISCHARGES, _raw(dis), NOW), Decoded)

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=6,
        ),
        st.booleans(),
    )
    def test_never_a_false_alarm_and_every_repeat_found(
        self, obj: dict[str, Any], ascii_only: bool
    ) -> None:
        """Any JSON object (keys and strings with colons, escapes or not) has no duplicate;
        the same object with one key written twice has one, named."""
        raw = json.dumps(obj, ensure_ascii=ascii_only).encode()
        assert duplicate_key(raw, obj) is None
        if obj:
            key = next(iter(obj))
            doubled = raw[:-1] + b", " + json.dumps(key).encode() + b": 0}"
            assert duplicate_key(doubled, obj) == key


class TestKafkaKey:
    def _decode(self, key: bytes | None) -> tuple[list[Any], list[Any]]:
        body = helpers.deteriorating(CID, NOW)
        return decode_batch([Incoming(NURSE_OBSERVATIONS, 0, 7, key, _raw(body))], NOW)

    def test_key_equal_to_the_citizen_id_is_accepted(self) -> None:
        accepted, dead = self._decode(CID.encode())
        assert len(accepted) == 1
        assert dead == []

    @pytest.mark.parametrize(
        ("key", "fragment"), [(None, "null"), (b"cit-other01", "differs"), (b"", "differs")]
    )
    def test_a_null_or_other_key_is_a_dead_letter_with_that_reason(
        self, key: bytes | None, fragment: str
    ) -> None:
        """A null or different key would put the citizen on another partition (another worker,
        out of order): a dead letter naming the key, with the event id."""
        accepted, dead = self._decode(key)
        assert accepted == []
        [letter] = dead
        assert letter.error.field == MESSAGE_KEY
        assert fragment in letter.error.reason
        assert letter.event_id is not None
        assert letter.category == "validation"
        assert "cit-other01" not in letter.error.reason
