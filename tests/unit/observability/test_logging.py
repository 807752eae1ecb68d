"""Log redaction and decision context: what reaches a rendered log line, and what never does.

Trade-off under test: a CPR-shaped run is ten digits (``DDMMYY-NNNN`` or undashed) whose first
six digits are a valid day and month. Such a run inside a *string* is always masked, even when it
was really something else (a unix time like ``1012251234`` in a message). Integer fields
(offsets, partitions, timestamps) are never touched, ten-digit runs with an impossible date
(``1717171717``) stay readable, and UUIDs are never cut up.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from mode.utils.logging import ExtensionFormatter
from structlog.testing import CapturingLoggerFactory

from dispatcher.contract.topics import NURSE_OBSERVATIONS
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.logging import (
    CPR_REDACTED,
    REDACTED,
    configure_logging,
    redact_text,
    uninstall_stdlib_redaction,
)
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.testing import InMemoryRepository
from tests import helpers

# Synthetic CPR-shaped test values (valid dates, not real people).
CPR_DASHED = "010190-1234"
CPR_PLAIN = "2512851234"


@pytest.fixture
def captured() -> Iterator[CapturingLoggerFactory]:
    with helpers.captured_logs("debug") as factory:
        yield factory


def lines(factory: CapturingLoggerFactory) -> list[dict[str, Any]]:
    return [json.loads(call.args[0]) for call in factory.logger.calls]


def rendered(factory: CapturingLoggerFactory) -> str:
    return "\n".join(str(call.args[0]) for call in factory.logger.calls)


def test_cpr_in_the_message_string_is_redacted_dashed_and_undashed(
    captured: CapturingLoggerFactory,
) -> None:
    """A CPR in the event text is masked whether written with or without the dash."""
    structlog.get_logger().info(f"lookup for {CPR_DASHED} and {CPR_PLAIN} failed")
    out = rendered(captured)
    assert CPR_DASHED not in out
    assert CPR_PLAIN not in out
    assert "0101901234" not in out
    assert lines(captured)[0]["event"] == f"lookup for {CPR_REDACTED} and {CPR_REDACTED} failed"


def test_cpr_in_nested_values_is_redacted(captured: CapturingLoggerFactory) -> None:
    """CPRs inside nested dicts and lists are masked; the surrounding structure survives."""
    structlog.get_logger().info(
        "context", detail={"ids": [f"cpr {CPR_DASHED}", "cit-7f3a9c"], "deep": {"x": CPR_PLAIN}}
    )
    line = lines(captured)[0]
    assert line["detail"] == {
        "ids": [f"cpr {CPR_REDACTED}", "cit-7f3a9c"],
        "deep": {"x": CPR_REDACTED},
    }


def test_free_text_and_identity_keys_are_dropped(captured: CapturingLoggerFactory) -> None:
    """Values under note, name and address are replaced, at the top level and nested."""
    structlog.get_logger().warning(
        "observation",
        note="breathless, daughter Karen visiting",
        name="Jens Hansen",
        Address="Søborg Hovedgade 1",
        event_payload={"note": "sleeping in chair", "spo2": 88},
    )
    line = lines(captured)[0]
    assert line["note"] == REDACTED
    assert line["name"] == REDACTED
    assert line["Address"] == REDACTED
    assert line["event_payload"] == {"note": REDACTED, "spo2": 88}
    out = rendered(captured)
    for secret in ("Karen", "Jens", "Søborg", "chair"):
        assert secret not in out


def test_ten_digit_numbers_that_are_not_cprs_are_handled_sensibly(
    captured: CapturingLoggerFactory,
) -> None:
    """Integer offsets stay, impossible dates stay, UUIDs stay whole; date-valid strings go."""
    event_id = "123e4567-e89b-42d3-a456-010190123400"
    structlog.get_logger().info(
        "committed",
        offset=1234567890,
        unix_time=1012251234,
        text_offset="offset 1717171717",
        event_id=event_id,
        text_time="at 1012251234",
        long_run="12345678901234",
    )
    line = lines(captured)[0]
    assert line["offset"] == 1234567890
    assert line["unix_time"] == 1012251234
    assert line["text_offset"] == "offset 1717171717"
    assert line["event_id"] == event_id
    assert line["long_run"] == "12345678901234"
    # The trade-off: a date-valid ten-digit run in a string is masked even if it is a time.
    assert line["text_time"] == f"at {CPR_REDACTED}"


def test_console_renderer_for_the_demo_also_redacts() -> None:
    """The readable demo format runs the same redaction before rendering."""
    factory = CapturingLoggerFactory()
    configure_logging("console", "info", logger_factory=factory)
    try:
        structlog.get_logger().info("demo", who=CPR_DASHED, note="free text")
        out = str(factory.logger.calls[0].args[0])
    finally:
        structlog.reset_defaults()
        uninstall_stdlib_redaction()
    assert CPR_DASHED not in out
    assert "free text" not in out
    assert CPR_REDACTED in out


def test_redact_text_is_idempotent() -> None:
    """Redacting twice gives the same text as once (a record may pass two filters)."""
    once = redact_text(f"a {CPR_DASHED} b")
    assert redact_text(once) == once == f"a {CPR_REDACTED} b"


@pytest.fixture
def stdlib_stream(captured: CapturingLoggerFactory) -> Iterator[io.StringIO]:
    """A handler added *after* configure_logging, as faust/mode do."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("faust.test_redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_stdlib_records_from_faust_are_redacted(stdlib_stream: io.StringIO) -> None:
    """CPRs in a stdlib format string, its arguments and exception text are masked."""
    logger = logging.getLogger("faust.test_redaction")
    logger.warning("key %s rejected for %s", CPR_PLAIN, "cit-7f3a9c")
    logger.info(f"inline {CPR_DASHED}")
    try:
        raise ValueError(f"bad key {CPR_DASHED}")
    except ValueError:
        logger.exception("agent crashed")
    out = stdlib_stream.getvalue()
    assert CPR_PLAIN not in out
    assert CPR_DASHED not in out
    assert f"key {CPR_REDACTED} rejected for cit-7f3a9c" in out
    assert f"bad key {CPR_REDACTED}" in out  # the traceback is kept, the CPR is not


def test_stdlib_record_with_a_broken_format_string_is_not_lost(
    stdlib_stream: io.StringIO,
) -> None:
    """A record whose args do not fit its format string is still written, redacted."""
    logging.getLogger("faust.test_redaction").error("two %s %s", CPR_DASHED)  # noqa: PLE1206 - on purpose
    out = stdlib_stream.getvalue()
    assert "two" in out
    assert CPR_DASHED not in out


NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


async def test_decision_log_lines_carry_event_and_case_id(
    captured: CapturingLoggerFactory,
) -> None:
    """The event_decided line has event_id and case_id bound; later lines do not inherit them."""

    async def send(messages: Sequence[OutboxMessage]) -> None:
        return None

    body = helpers.deteriorating(helpers.citizen(), NOW - timedelta(seconds=5))
    msg = Incoming(NURSE_OBSERVATIONS, 0, 0, body["citizen_id"].encode(), json.dumps(body).encode())
    processor = BatchProcessor(InMemoryRepository(), send, DispatcherMetrics(), clock=lambda: NOW)
    await processor.handle([msg])
    structlog.get_logger().info("after")

    decided = [line for line in lines(captured) if line["event"] == "event_decided"]
    assert len(decided) == 1
    assert decided[0]["event_id"] == body["event_id"]
    assert uuid.UUID(decided[0]["case_id"])
    after = [line for line in lines(captured) if line["event"] == "after"]
    assert "event_id" not in after[0]
    assert "case_id" not in after[0]


def test_redacted_stdlib_records_survive_modes_formatter() -> None:
    """mode's ExtensionFormatter (faust's log output) renders a redacted record verbatim."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ExtensionFormatter(stream=stream, fmt="%(message)s"))
    logger = logging.getLogger("mode.test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    configure_logging("json", "info", logger_factory=CapturingLoggerFactory())
    try:
        logger.warning("joining group %s at 100%% for %s", "acute-dispatcher", CPR_DASHED)
    finally:
        logger.removeHandler(handler)
        structlog.reset_defaults()
        uninstall_stdlib_redaction()
    assert stream.getvalue().strip() == f"joining group acute-dispatcher at 100% for {CPR_REDACTED}"
