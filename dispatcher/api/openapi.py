"""``/api/openapi.json``: the OpenAPI 3.1 description, kept as YAML next to this module and
served without a token (a unit test keeps it and the router in step)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from dispatcher.api.responses import json_response


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 description, kept as YAML next to this module."""
    text = (resources.files("dispatcher.api") / "openapi.yaml").read_text(encoding="utf-8")
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_spec())
