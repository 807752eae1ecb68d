"""Decoder fuzz over all three input topics and inputs far beyond 512 bytes: ``decode`` never
raises, a rejection always names a field and a reason, a valid-but-extreme event is accepted,
and the size limit is exact (test_decoding.py::TestFuzz covers small nurse observations)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.contract.events import INPUT_MODEL_BY_TOPIC
from dispatcher.contract.topics import INPUT_TOPICS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.ingest.decoding import MAX_MESSAGE_BYTES, Decoded, Rejected, decode
from tests.unit.ingest import event_strategies as es

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOPICS = sorted(INPUT_TOPICS)


def assert_well_formed(result: Decoded | Rejected) -> None:
    assert isinstance(result, Decoded | Rejected)
    if isinstance(result, Rejected):
        assert result.errors
        assert all(e.field and e.reason for e in result.errors)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(es.UNICODE, max_size=3000),
    ),
    lambda children: st.lists(children, max_size=30) | st.dictionaries(st.text(), children),
    max_leaves=60,
)


def field_names(topic: str) -> list[str]:
    return sorted(INPUT_MODEL_BY_TOPIC[topic].model_fields)


class TestDecoderFuzzAllTopics:
    @pytest.mark.parametrize("topic", TOPICS)
    @FUZZ
    @given(raw=st.binary(min_size=513, max_size=4096))
    def test_arbitrary_large_bytes_never_raise(self, topic: str, raw: bytes) -> None:
        assert_well_formed(decode(topic, raw, NOW))

    @pytest.mark.parametrize("topic", TOPICS)
    @FUZZ
    @given(data=st.data())
    def test_arbitrary_objects_with_the_topics_fields_never_raise(
        self, topic: str, data: st.DataObject
    ) -> None:
        body = data.draw(st.dictionaries(st.sampled_from(field_names(topic)), json_values))
        result = decode(topic, json.dumps(body).encode(), NOW)
        assert_well_formed(result)

    @FUZZ
    @given(item=es.events(NOW))
    def test_valid_extreme_events_are_accepted_whole(
        self, item: tuple[str, dict[str, Any]]
    ) -> None:
        """Every topic's valid-but-extreme event decodes to its model, ids intact."""
        topic, body = item
        result = decode(topic, es.encode(body), NOW)
        assert isinstance(result, Decoded), getattr(result, "errors", None)
        assert str(result.event.event_id) == body["event_id"]
        assert result.event.citizen_id == body["citizen_id"]

    @FUZZ
    @given(item=es.events(NOW), data=st.data())
    def test_corrupted_valid_events_never_raise(
        self, item: tuple[str, dict[str, Any]], data: st.DataObject
    ) -> None:
        """A valid event with bytes overwritten, inserted or cut anywhere: an event or errors."""
        topic, body = item
        raw = bytearray(es.encode(body))
        at = data.draw(st.integers(0, len(raw)))
        junk = data.draw(st.binary(min_size=1, max_size=64))
        how = data.draw(st.sampled_from(["overwrite", "insert", "cut"]))
        if how == "overwrite":
            raw[at : at + len(junk)] = junk
        elif how == "insert":
            raw[at:at] = junk
        else:
            del raw[at:]
        assert_well_formed(decode(topic, bytes(raw), NOW))

    @FUZZ
    @given(item=es.events(NOW), size=st.integers(MAX_MESSAGE_BYTES - 64, MAX_MESSAGE_BYTES + 64))
    def test_the_size_limit_is_exact(self, item: tuple[str, dict[str, Any]], size: int) -> None:
        """A valid event padded (JSON whitespace) to ``size`` bytes: accepted up to the limit,
        refused as malformed above it, saying the size."""
        topic, body = item
        raw = es.encode(body)
        if len(raw) > size:
            return
        raw += b" " * (size - len(raw))
        result = decode(topic, raw, NOW)
        if size <= MAX_MESSAGE_BYTES:
            assert isinstance(result, Decoded), getattr(result, "errors", None)
        else:
            assert isinstance(result, Rejected)
            assert result.category == DeadLetterCategory.MALFORMED
            assert str(size) in result.errors[0].reason
