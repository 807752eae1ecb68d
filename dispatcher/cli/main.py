"""The ``dispatcher`` command: run the stack, a worker, the demo, and maintenance tasks."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from dispatcher.cli import evaluate as cli_evaluate
from dispatcher.cli import ops as cli_ops
from dispatcher.cli import rules as cli_rules
from dispatcher.config import Settings
from dispatcher.errors import ConfigError
from dispatcher.observability.logging import configure_logging

REPO_SCHEMAS = Path("schemas")
SUPERVISE_EVERY_S = 0.5


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _print_banner(stack: object, settings: Settings) -> None:
    from dispatcher.devstack.stack import Stack

    assert isinstance(stack, Stack)
    print("acute dispatcher is up", flush=True)
    print(f"  kafka bootstrap : {stack.bootstrap}" + (" (embedded Tansu)" if stack.broker else ""))
    print(f"  database        : {stack.dsn}" + (" (embedded pgserver)" if stack.postgres else ""))
    for w in stack.workers:
        print(f"  {w.name:15} : http://127.0.0.1:{w.web_port}/healthz  /metrics   log {w.log_path}")
    print(
        "  topics          : hospital.discharges, home.sensor-readings, "
        "homecare.nurse-observations -> acute.escalations, dispatcher.dead-letter"
    )
    print("  stop with Ctrl-C", flush=True)


def cmd_up(args: argparse.Namespace, demo: bool = False) -> int:
    """Start the stack, then supervise it until Ctrl-C, SIGTERM or ``--duration``.

    A port that is taken, or a child that cannot become healthy, ends ``up`` at once with one
    line on stderr and exit code 2 (configuration) or 1 (failure), never "up" and exit 0. Once
    up, a child that dies is reported and restarted with backoff (``devstack/supervisor.py``)."""
    from dispatcher.devstack.stack import Stack, seed_roster_text
    from dispatcher.devstack.supervisor import Supervisor

    settings = Settings.from_env()
    stop = threading.Event()
    _install_stop_handlers(stop)
    roster_text = Path(args.roster).read_text(encoding="utf-8") if args.roster else None
    stack = Stack.start_infra(
        settings, Path(settings.data_dir).resolve(), roster_text or seed_roster_text()
    )
    threads: list[threading.Thread] = []
    try:
        try:
            for i in range(args.workers):
                stack.start_worker(web_port=settings.web_port + i)
            for w in stack.workers:
                stack.wait_healthy(w)
            api = stack.start_api(settings.api_port)
        except ConfigError as exc:
            print(f"dispatcher up: {exc}", file=sys.stderr, flush=True)
            return 2
        except (RuntimeError, TimeoutError) as exc:
            print(f"dispatcher up: {exc}", file=sys.stderr, flush=True)
            return 1
        _print_banner(stack, settings)
        print(
            f"  HTTP API        : http://127.0.0.1:{api.web_port}/api/openapi.json "
            f"(tokens: `dispatcher tokens create --actor ID --team TEAM`)",
            flush=True,
        )
        if demo:
            threads = _start_demo_threads(stack, args, stop, settings.partitions)
        supervisor = Supervisor(
            children=lambda: [*stack.workers, *stack.apis],
            restart=stack.restart,
            say=lambda line: print(f"supervisor: {line}", file=sys.stderr, flush=True),
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            supervisor.check()
            stop.wait(SUPERVISE_EVERY_S)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        print("\nstopping workers, broker and database...", flush=True)
        stack.stop()
        print("stopped.", flush=True)
    return 0


def _start_demo_threads(
    stack: object, args: argparse.Namespace, stop: threading.Event, partitions: int
) -> list[threading.Thread]:
    """The demo's traffic generator and its escalation/page tail, as daemon threads."""
    from dispatcher.devstack import demo as demo_mod
    from dispatcher.devstack.stack import Stack

    assert isinstance(stack, Stack)
    print(f"demo traffic: {args.rate}/s; escalations and dead letters follow\n", flush=True)
    threads = [
        threading.Thread(
            target=demo_mod.run_traffic, args=(stack.bootstrap, args.rate, stop), daemon=True
        ),
        threading.Thread(
            target=demo_mod.tail, args=(stack.bootstrap, stop, partitions), daemon=True
        ),
    ]
    for t in threads:
        t.start()
    return threads


def cmd_worker(args: argparse.Namespace) -> int:
    from dispatcher.streams.runtime import run_worker

    return run_worker(Settings.from_env())


def cmd_migrate(args: argparse.Namespace) -> int:
    from dispatcher.devstack.stack import apply_migrations

    applied = asyncio.run(apply_migrations(Settings.from_env().dsn()))
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from dispatcher.contract import schemas

    folder = Path(args.dir)
    if args.action == "write":
        for path in schemas.write(folder):
            print(f"wrote {path}")
        return 0
    stale = schemas.drift(folder)
    if stale:
        print(
            "schemas drifted from the models (run `dispatcher schemas write`): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    print("schemas up to date")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    import json

    from dispatcher.ops import reconcile

    settings = Settings.from_env()
    report = asyncio.run(reconcile.run(settings.bootstrap(), settings.dsn(), args.grace))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for line in reconcile.summarise(report):
            print(line)
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start broker, database and workers (embedded unless env set)")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--duration", type=float, default=None, help="seconds, then stop")
    up.add_argument("--roster", default=None, help="roster YAML to load if none is (default: seed)")

    demo = sub.add_parser("demo", help="`up` plus demo traffic, printing escalations")
    demo.add_argument("--workers", type=int, default=1)
    demo.add_argument("--rate", type=float, default=20.0, help="messages per second")
    demo.add_argument("--duration", type=float, default=None, help="seconds, then stop")
    demo.add_argument(
        "--roster", default=None, help="roster YAML to load if none is (default: seed)"
    )

    sub.add_parser("worker", help="run one faust worker (needs broker and database env)")
    sub.add_parser("migrate", help="apply database migrations")

    sch = sub.add_parser("schemas", help="write or check the JSON Schemas in schemas/")
    sch.add_argument("action", choices=["write", "check"])
    sch.add_argument("--dir", default=str(REPO_SCHEMAS))

    rec = sub.add_parser(
        "reconcile",
        help="prove nothing was lost: every input has an outcome, every "
        "escalation was published and reached the case manager",
    )
    rec.add_argument("--grace", type=float, default=10.0, help="seconds allowed in flight")
    rec.add_argument("--json", action="store_true")

    cli_rules.add_subparsers(sub)
    cli_ops.add_subparsers(sub)
    cli_evaluate.add_subparsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A configuration error (a missing or invalid ``DISPATCHER_*`` setting)
    ends it with one line on stderr and exit code 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"dispatcher {args.command}: {exc}", file=sys.stderr, flush=True)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command in ("up", "demo"):
        settings = Settings.from_env()
        configure_logging("console", settings.log_level)
        return cmd_up(args, demo=args.command == "demo")
    handlers = {
        "worker": cmd_worker,
        "migrate": cmd_migrate,
        "schemas": cmd_schemas,
        "reconcile": cmd_reconcile,
        **cli_rules.HANDLERS,
        **cli_ops.HANDLERS,
        **cli_evaluate.HANDLERS,
    }
    return handlers[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
