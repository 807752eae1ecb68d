"""Keep ``dispatcher up``'s children running: a dead worker or API is restarted with backoff.

Before this, a worker that died (kill -9, a crash, a port taken) left a zombie and nothing
consumed, silently: the worst failure for a paging system, because it looks up. Now every exit
is logged with the child's exit code and log file, and the child is started again after
``RestartPolicy.delay`` (1 s, 2 s, 4 s ... capped at 30 s; the count resets once a child stayed
up for ``stable_after_s``). The policy is a pure function of the failure count; the loop reads a
monotonic clock passed in, so both are unit-testable without processes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from dispatcher.errors import ConfigError


class PortInUse(ConfigError):
    """A port a child must listen on is already taken by another process."""


def ensure_port_free(port: int, variable: str, host: str = "127.0.0.1") -> None:
    """Raise ``PortInUse`` naming the setting to change, when ``port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: a port held only by closed connections (TIME_WAIT) is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {host} is already in use; set {variable} to a free port"
            ) from None


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff between restarts of one child."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_after_s: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before restart number ``failures`` (1 = the first)."""
        return float(min(self.first_delay_s * 2 ** max(failures - 1, 0), self.max_delay_s))


class ProcessLike(Protocol):
    @property
    def returncode(self) -> int | None: ...

    @property
    def pid(self) -> int: ...


class ChildLike(Protocol):
    """The slice of ``devstack.stack.WorkerProcess`` the supervisor reads."""

    @property
    def name(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    @property
    def process(self) -> ProcessLike: ...

    def alive(self) -> bool: ...


C = TypeVar("C", bound=ChildLike)


@dataclass
class _Track:
    started_at: float
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor(Generic[C]):
    """One ``check()`` per tick: note deaths, restart the children whose backoff has passed.

    ``children()`` lists the current child objects; ``restart(child)`` starts a replacement and
    returns it (the stack swaps it in); ``say(line)`` reports to the operator."""

    children: Callable[[], list[C]]
    restart: Callable[[C], C]
    say: Callable[[str], None]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic
    _tracks: dict[str, _Track] = field(default_factory=dict)
    restarts: int = 0

    def check(self) -> None:
        now = self.clock()
        for child in self.children():
            track = self._tracks.setdefault(child.name, _Track(started_at=now))
            if child.alive():
                if track.failures and now - track.started_at >= self.policy.stable_after_s:
                    track.failures = 0
                continue
            if track.restart_at is None:
                track.failures += 1
                delay = self.policy.delay(track.failures)
                track.restart_at = now + delay
                self.say(
                    f"{child.name} exited with code {child.process.returncode}; restarting in "
                    f"{delay:.0f} s (restart {track.failures}); see {child.log_path}"
                )
            elif now >= track.restart_at:
                replacement = self.restart(child)
                track.restart_at = None
                track.started_at = now
                self.restarts += 1
                self.say(f"{replacement.name} restarted (pid {replacement.process.pid})")
