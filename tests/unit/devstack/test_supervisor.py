"""The supervisor of ``dispatcher up``: backoff, restart, reset, and the port check."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dispatcher.devstack.supervisor import PortInUse, RestartPolicy, Supervisor, ensure_port_free
from dispatcher.errors import ConfigError


@dataclass
class FakeProcess:
    pid: int
    returncode: int | None = None


@dataclass
class FakeChild:
    name: str
    process: FakeProcess
    log_path: Path = Path("worker-1.log")

    def alive(self) -> bool:
        return self.process.returncode is None


@dataclass
class Harness:
    now: float = 0.0
    lines: list[str] = field(default_factory=list)
    children: list[FakeChild] = field(default_factory=list)
    next_pid: int = 100

    def restart(self, child: FakeChild) -> FakeChild:
        self.next_pid += 1
        new = FakeChild(child.name, FakeProcess(self.next_pid))
        self.children[self.children.index(child)] = new
        return new

    def supervisor(self, policy: RestartPolicy | None = None) -> Supervisor[FakeChild]:
        return Supervisor(
            children=lambda: list(self.children),
            restart=self.restart,
            say=self.lines.append,
            policy=policy or RestartPolicy(),
            clock=lambda: self.now,
        )


class TestRestartPolicy:
    def test_delay_doubles_from_the_first_and_is_capped(self) -> None:
        """Restarts wait 1, 2, 4, 8, 16 s, then never more than the cap."""
        policy = RestartPolicy(first_delay_s=1, max_delay_s=30)
        assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


class TestSupervisor:
    def test_a_dead_child_is_reported_then_restarted_after_its_backoff(self) -> None:
        """A child that exited is announced with its exit code, and restarted once 1 s passed."""
        h = Harness(children=[FakeChild("worker-1", FakeProcess(7))])
        sup = h.supervisor()
        sup.check()
        assert h.lines == []
        h.children[0].process.returncode = -9
        sup.check()
        assert "worker-1 exited with code -9; restarting in 1 s" in h.lines[0]
        h.now = 0.5
        sup.check()
        assert h.children[0].process.pid == 7  # backoff not over yet
        h.now = 1.0
        sup.check()
        assert h.children[0].process.pid == 101
        assert h.children[0].alive()
        assert sup.restarts == 1
        assert h.lines[-1] == "worker-1 restarted (pid 101)"

    def test_a_child_that_keeps_dying_waits_longer_each_time(self) -> None:
        """The second consecutive death waits 2 s, not 1 s."""
        h = Harness(children=[FakeChild("api", FakeProcess(1, returncode=1))])
        sup = h.supervisor()
        sup.check()
        h.now = 1.0
        sup.check()
        h.children[0].process.returncode = 1
        h.now = 1.5
        sup.check()
        assert "restarting in 2 s (restart 2)" in h.lines[-1]
        h.now = 3.0
        sup.check()
        assert sup.restarts == 1
        h.now = 3.5
        sup.check()
        assert sup.restarts == 2

    def test_a_child_that_stayed_up_long_enough_starts_again_from_the_first_delay(self) -> None:
        """After ``stable_after_s`` of uptime the failure count resets."""
        h = Harness(children=[FakeChild("worker-1", FakeProcess(1, returncode=1))])
        sup = h.supervisor(RestartPolicy(stable_after_s=60))
        sup.check()
        h.now = 1.0
        sup.check()
        h.now = 100.0
        sup.check()  # alive for 99 s: stable
        h.children[0].process.returncode = 1
        sup.check()
        assert "restarting in 1 s (restart 1)" in h.lines[-1]


class TestPortCheck:
    def test_a_listening_port_is_refused_with_the_setting_to_change(self) -> None:
        """A port another socket listens on raises PortInUse naming the variable."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            with pytest.raises(PortInUse, match=f"port {port} .* DISPATCHER_WEB_PORT"):
                ensure_port_free(port, "DISPATCHER_WEB_PORT")

    def test_a_free_port_passes_and_port_in_use_is_a_config_error(self) -> None:
        """A closed port is free; PortInUse is a ConfigError (exit 2, one line)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ensure_port_free(port, "DISPATCHER_WEB_PORT")
        assert issubclass(PortInUse, ConfigError)
