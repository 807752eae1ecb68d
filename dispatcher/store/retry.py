"""Retrying transient store failures: one backoff loop for every shell.

``TRANSIENT_ERRORS`` lists what may succeed if tried again (connection loss, a serialization
conflict, another worker claiming the same id first), together with our own ``RetryableError``.
Everything else propagates: the caller isolates it (split the batch, dead-letter the message).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from dispatcher.errors import RetryableError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RetryableError,
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.UniqueViolationError,  # another worker claimed the same event id concurrently
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.AdminShutdownError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for transient store errors: the backpressure of the shell."""

    first_delay_s: float = 0.2
    max_delay_s: float = 5.0

    async def run(
        self,
        work: Callable[[], Awaitable[T]],
        on_retry: Callable[[BaseException, float], None] | None = None,
    ) -> T:
        """Await ``work()`` until it succeeds; retry (forever) only on ``TRANSIENT_ERRORS``.

        ``on_retry(error, delay)`` is told before each wait; any other exception propagates."""
        delay = self.first_delay_s
        while True:
            try:
                return await work()
            except TRANSIENT_ERRORS as exc:
                if on_retry is not None:
                    on_retry(exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
