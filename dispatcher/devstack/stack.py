"""Start and stop the whole dispatcher: broker, database, topics, migrations and workers.

``dispatcher up``, ``dispatcher demo`` and the integration tests all use ``Stack``, so what the
tests exercise is what a user runs. Workers are child processes (``python -m dispatcher worker``)
so a test can kill -9 one exactly as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import SecretStr

from dispatcher.config import Settings
from dispatcher.devstack.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from dispatcher.devstack.supervisor import ensure_port_free
from dispatcher.ops.topics import ensure_topics
from dispatcher.store import db
from dispatcher.store.migrate import migrate

SEED_ROSTER = "seed_roster.yaml"


def seed_roster_text() -> str:
    from importlib import resources

    return (resources.files("dispatcher.routing") / SEED_ROSTER).read_text(encoding="utf-8")


async def load_roster_if_empty(dsn: str, text: str, source: str) -> list[str]:
    """Store the roster unless one is loaded already; return the teams' page topics."""
    from dispatcher.routing.roster import page_topic, parse_roster
    from dispatcher.store.roster import seed_roster

    roster = parse_roster(text, source)
    async with db.connection(dsn) as conn, db.transaction(conn) as tx:
        current = await seed_roster(tx, roster)
    return [page_topic(t.team_id) for t in current.teams]


async def apply_migrations(dsn: str) -> list[int]:
    """Apply pending migrations to ``dsn``; the versions applied now."""
    async with db.connection(dsn) as conn:
        return await migrate(conn)


def http_get(port: int, path: str, timeout_s: float = 1.0) -> tuple[int, dict[str, object]]:
    """GET a JSON document from a local server: (status, body); (0, {}) when unreachable.

    A body that is not JSON (e.g. a plain 500 page while a worker starts) reads as ``{}``."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:
        return 0, {}
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def healthz(port: int, timeout_s: float = 1.0) -> tuple[int, dict[str, object]]:
    return http_get(port, "/healthz", timeout_s)


@dataclass
class WorkerProcess:
    name: str
    web_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)
    args: tuple[str, ...] = ()
    port_env: str = "DISPATCHER_WEB_PORT"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


@dataclass
class Stack:
    settings: Settings
    run_dir: Path
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    apis: list[WorkerProcess] = field(default_factory=list)

    @classmethod
    def start_infra(
        cls, settings: Settings, run_dir: Path, roster_text: str | None = None
    ) -> Stack:
        """Start what the settings do not name, then create topics and apply migrations.

        ``roster_text`` (YAML) is stored when no roster is loaded yet; the demo and the tests
        pass the seed roster."""
        run_dir.mkdir(parents=True, exist_ok=True)
        stack = cls(settings=settings, run_dir=run_dir)
        try:
            if not settings.kafka_bootstrap:
                stack.broker = EmbeddedBroker.start(log_path=run_dir / "broker.log")
            if settings.database_url is None:
                stack.postgres = EmbeddedPostgres.start(run_dir / "pg")
            stack.settings = settings.model_copy(
                update={
                    "kafka_bootstrap": stack.bootstrap,
                    "database_url": settings.database_url or _secret(stack.postgres),
                }
            )
            asyncio.run(apply_migrations(stack.settings.dsn()))
            page_topics: list[str] = []
            if roster_text is not None:
                page_topics = asyncio.run(
                    load_roster_if_empty(stack.settings.dsn(), roster_text, "roster")
                )
            ensure_topics(
                stack.bootstrap,
                settings.partitions,
                settings.replication,
                extra=tuple(page_topics),
            )
        except BaseException:
            stack.stop()
            raise
        return stack

    @property
    def bootstrap(self) -> str:
        if self.broker is not None:
            return self.broker.bootstrap
        return self.settings.bootstrap()

    @property
    def dsn(self) -> str:
        return self.settings.dsn()

    def _spawn(self, name: str, port: int, args: list[str], port_env: str) -> WorkerProcess:
        """``python -m dispatcher ARGS`` as a child with our settings, logging to NAME.log.

        A port that another process holds is refused here, with the setting to change, instead
        of a child that dies on bind while ``up`` reports success."""
        ensure_port_free(port, port_env)
        env = {**os.environ, **self.settings.to_env(), port_env: str(port)}
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "dispatcher", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return WorkerProcess(name, port, proc, log_path, log, tuple(args), port_env)

    def restart(self, child: WorkerProcess) -> WorkerProcess:
        """Start a replacement for a dead ``child`` (same name, port and command) in its place."""
        child.stop()
        replacement = self._spawn(child.name, child.web_port, list(child.args), child.port_env)
        for group in (self.workers, self.apis):
            if child in group:
                group[group.index(child)] = replacement
        return replacement

    def start_worker(self, name: str | None = None, web_port: int | None = None) -> WorkerProcess:
        name = name or f"worker-{len(self.workers) + 1}"
        worker = self._spawn(name, web_port or free_port(), ["worker"], "DISPATCHER_WEB_PORT")
        self.workers.append(worker)
        return worker

    def start_api(self, port: int | None = None) -> WorkerProcess:
        """Start the HTTP API (``python -m dispatcher api``) as a child process."""
        port = port or free_port()
        api = self._spawn("api", port, ["api", "--port", str(port)], "DISPATCHER_API_PORT")
        self.apis.append(api)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _ = http_get(port, "/api/openapi.json")
            if status == 200:
                return api
            if not api.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"the API did not come up; see {api.log_path}")

    def wait_healthy(self, worker: WorkerProcess, timeout_s: float = 90.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError(
                    f"{worker.name} exited with {worker.process.returncode}; see {worker.log_path}"
                )
            status, body = healthz(worker.web_port)
            if status == 200:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"{worker.name} not healthy after {timeout_s}s; see {worker.log_path}")

    def stop(self) -> None:
        for worker in [*self.apis, *self.workers]:
            with contextlib.suppress(Exception):
                worker.stop()
        self.workers.clear()
        self.apis.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def _secret(pg: EmbeddedPostgres | None) -> SecretStr | None:
    return SecretStr(pg.dsn) if pg is not None else None
