"""The wall clock, read only by the I/O shell and handed to the pure core as ``now``.

Shell objects take a ``clock: Clock`` (default ``utcnow``) so tests can pass a fixed or stepping
clock; nothing under ``rules/``, ``routing/``, ``cases/lifecycle.py`` or ``ingest/planner.py``
reads it (the layering test forbids ``datetime.now`` there).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)
