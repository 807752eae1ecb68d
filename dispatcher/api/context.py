"""What every handler finds on the application: the pool, the clock, the roster hook and the
metrics.

Kept apart from ``app.py`` so resource modules and middlewares can read them without importing
the module that imports them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dispatcher.clock import Clock
from dispatcher.observability.metrics import ApiMetrics
from dispatcher.store.db import Pool

RosterHook = Callable[[], Awaitable[None] | None]

POOL: web.AppKey[Pool] = web.AppKey("pool")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
ROSTER_HOOK: web.AppKey[RosterHook | None] = web.AppKey("on_roster_change")
METRICS: web.AppKey[ApiMetrics] = web.AppKey("metrics")
