"""The API's one error shape, ``{"error": {"field"?: ..., "reason": ...}}``, and the middleware
that turns every failure into it with a fitting status.

Log lines name only the exception type and the route: an exception message may quote row values
(notes, reasons, citizen ids), which must never reach the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from dispatcher.api.responses import json_response
from dispatcher.errors import PermanentError

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(PermanentError):
    """An error the client can act on: status, reason and, when one is to blame, the field."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.errors = errors

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"reason": self.reason}
        if self.field is not None:
            err["field"] = self.field
        if self.errors and len(self.errors) > 1:
            err["errors"] = self.errors
        return {"error": err}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as (dotted field path, message); "$" for whole-object rules."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "$", "reason": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validation_error(exc: ValidationError) -> ApiError:
    """A 400 naming the first bad field, with all of them when there are several."""
    errors = field_errors(exc)
    first = errors[0]
    return ApiError(400, first["reason"], first["field"], errors)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the JSON error shape; never echo free text into the log."""
    try:
        return await handler(request)
    except ApiError as exc:
        resp = json_response(exc.body(), status=exc.status)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="dispatcher"'
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"error": {"reason": exc.reason.lower()}}, status=exc.status)
    except Exception as exc:
        # The exception message may quote row values; log only its type and the route.
        log.error(
            "api_internal_error", error=type(exc).__name__, path=request.path, method=request.method
        )
        return json_response({"error": {"reason": "internal error"}}, status=500)
