"""JSON out of the API: orjson-encoded responses and ISO-8601 times (``null`` for none)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
