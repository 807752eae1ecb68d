"""JSON into the API: request bodies parsed strictly into the models of ``api.models``, with a
400 that names the first bad field (``$`` for the body as a whole)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatcher.api.errors import ApiError, validation_error

M = TypeVar("M", bound=BaseModel)


async def json_body(request: web.Request) -> Any:
    """The decoded JSON body; a 400 on ``$`` when there is none or it is not JSON."""
    if not request.can_read_body:
        raise ApiError(400, "a JSON body is required", "$")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", "$") from exc


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The body as ``model``; a 400 naming the first bad field otherwise."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object", "$")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc
