"""structlog set-up with redaction of patient identifiers.

Health data rule: no CPR number, name or address in a log line. Two processors enforce it:
``drop_sensitive_keys`` removes values under keys that carry free text or identity, and
``redact_cpr`` masks anything shaped like a CPR number in any string value, however it got there.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

CPR_ANYWHERE = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")
REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {"cpr", "name", "full_name", "address", "note", "free_text", "phone", "email", "payload",
     "original", "original_b64", "value_bytes"}
)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return CPR_ANYWHERE.sub("[cpr-redacted]", value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v)
            for k, v in value.items()
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


def configure_logging(fmt: str = "json", level: str = "info") -> None:
    """JSON lines in production, a readable console in the demo; redaction in both."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *REDACTION_PROCESSORS,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
