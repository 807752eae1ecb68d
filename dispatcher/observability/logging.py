"""structlog set-up with redaction of patient identifiers.

Health data rule: no CPR number, name or address in a log line. Three pieces enforce it:

* ``drop_sensitive_keys`` removes values under keys that carry free text or identity;
* ``redact_cpr`` masks anything shaped like a CPR number in any string value (nested dicts and
  lists included), however it got there;
* ``CprRedactionFilter`` does the same for the standard-library records that faust, mode and
  aiokafka write. ``configure_logging`` installs it on the root handlers and in the log-record
  factory, so handlers that faust/mode add later are covered too.

What counts as "CPR-shaped" (the trade-off): ten digits, optionally ``DDMMYY-NNNN``, not part of a
longer digit run, whose first six digits are a valid day (01-31) and month (01-12). Since 2007
CPR numbers need not pass the modulus-11 check, so no checksum can narrow it further. We accept
over-redaction: a ten-digit number in a *string* that happens to start with a valid day and month
(for example the unix time ``1012251234`` written into a message) is masked. Numbers logged as
``int`` values (offsets, partitions, timestamps as structured fields) are never touched, and a
ten-digit run whose day or month is impossible (``1717171717``, ``9999999999``) stays readable.
UUIDs are matched first and left whole, so an event id is never mangled by a digit run inside it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from dispatcher.contract.vocab import CPR_PATTERN

_UUID_OR_CPR = re.compile(
    r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<cpr>" + CPR_PATTERN.pattern + ")"
)
CPR_REDACTED = "[cpr-redacted]"
REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "cpr",
        "name",
        "full_name",
        "address",
        "note",
        "free_text",
        "phone",
        "email",
        "payload",
        "original",
        "original_b64",
        "value_bytes",
    }
)


def redact_text(text: str) -> str:
    """Mask every CPR-shaped run in ``text``; UUIDs pass through unchanged."""
    return _UUID_OR_CPR.sub(lambda m: m.group("uuid") or CPR_REDACTED, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def drop_sensitive_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
    return event_dict


def redact_cpr(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub(value)
    return event_dict


REDACTION_PROCESSORS = (drop_sensitive_keys, redact_cpr)


class CprRedactionFilter(logging.Filter):
    """Mask CPR-shaped runs in a stdlib record's message, arguments and exception text.

    The message is formatted once here (``msg % args``) and the arguments dropped, so a CPR
    passed as an argument is caught as well as one in the format string. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_REDACTED_MARK = "_dispatcher_cpr_redacted"


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, _REDACTED_MARK, False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not lose the record
        message = f"{record.msg!s} {record.args!r}"
    record.msg = redact_text(message)
    record.args = ()  # not None: mode's formatter would turn None into (None,) and format it
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    setattr(record, _REDACTED_MARK, True)
    return record


_FACTORY_MARK = "_dispatcher_redacting_factory"


def install_stdlib_redaction() -> CprRedactionFilter:
    """Redact stdlib records: a filter on today's root handlers and a redacting record factory.

    The factory covers handlers that faust/mode install after us. Idempotent.
    """
    flt = CprRedactionFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CprRedactionFilter) for f in handler.filters):
            handler.addFilter(flt)
    current = logging.getLogRecordFactory()
    if getattr(current, _FACTORY_MARK, None) is None:

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return redact_record(current(*args, **kwargs))

        setattr(factory, _FACTORY_MARK, current)
        logging.setLogRecordFactory(factory)
    return flt


def uninstall_stdlib_redaction() -> None:
    """Undo ``install_stdlib_redaction`` (tests use it to restore global state)."""
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, CprRedactionFilter)]:
            handler.removeFilter(f)
    previous = getattr(logging.getLogRecordFactory(), _FACTORY_MARK, None)
    if previous is not None:
        logging.setLogRecordFactory(previous)


def build_processors(fmt: str = "json") -> list[Any]:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        *REDACTION_PROCESSORS,
        renderer,
    ]


def configure_logging(
    fmt: str = "json",
    level: str = "info",
    logger_factory: Callable[..., Any] | None = None,
) -> None:
    """JSON lines in production, a readable console in the demo; redaction in both."""
    structlog.configure(
        processors=build_processors(fmt),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=logger_factory or structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    install_stdlib_redaction()
