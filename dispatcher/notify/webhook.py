"""One webhook POST with a hard timeout, as a result value: HTTP and network failures are data.

Why a result and not exceptions: the delivery loop must record every attempt (status, error,
duration) and decide the next step from it; a raised exception from one receiver must never
escape into the loop that serves every other citizen. Redirects are not followed (see
``backoff``), and the response body is neither read beyond a small limit nor kept: it is the
receiver's text, not ours to store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

DEFAULT_TIMEOUT_S = 5.0
MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class SendResult:
    """The outcome of one POST. ``status`` is ``None`` when no response arrived."""

    status: int | None
    error: str | None
    duration_ms: int
    retry_after: str | None = None  # the raw header; parsed by the caller against its clock


class Sender(Protocol):
    """What ``DeliveryWorker`` needs from a sender (the aiohttp one, or a test double)."""

    @property
    def timeout_s(self) -> float: ...

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult: ...


class WebhookSender:
    """aiohttp-based sender. Owns its ``ClientSession`` unless one is passed in.

    ``timeout_s`` bounds the whole request (connect, send, response headers): a hanging
    receiver costs one in-flight slot for at most that long.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        user_agent: str = "acute-dispatcher-webhook/1",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._user_agent = user_agent

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Created lazily: a ClientSession must be made inside the running event loop.
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.monotonic()
        all_headers = {"User-Agent": self._user_agent, **headers}
        try:
            async with self._client().post(
                url,
                data=body,
                headers=all_headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                # Drain a little so the connection can be reused; the content is discarded.
                await resp.content.read(MAX_RESPONSE_BYTES)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            return SendResult(None, "timeout", _ms_since(started))
        except aiohttp.ClientError as exc:
            # The type name only: aiohttp's messages can contain the URL, which may hold a token.
            return SendResult(None, type(exc).__name__, _ms_since(started))
        except (OSError, ValueError) as exc:
            return SendResult(None, type(exc).__name__, _ms_since(started))
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return SendResult(status, error, _ms_since(started), retry_after)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports finish closing (avoids ResourceWarnings).
            await asyncio.sleep(0)

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def _ms_since(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
