"""Operations commands: ``api``, ``tokens`` and ``roster``.

* ``dispatcher api [--host H] [--port P]`` serves the HTTP API (``dispatcher.api``) on
  ``DISPATCHER_API_PORT`` (6080) against ``DISPATCHER_DATABASE_URL``.
* ``dispatcher tokens create --actor X [--team T] [--admin]`` prints a new token once; only its
  SHA-256 is stored. ``dispatcher tokens revoke --actor X`` revokes all of the actor's tokens.
* ``dispatcher roster load FILE`` validates and stores a roster (exit 1 with errors naming the
  file and the field); ``dispatcher roster show [--json] [--show-secrets]`` prints it.

Kept apart from ``cli.py`` so that file only registers and dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import structlog
import yaml
from aiohttp import web

from dispatcher.api import auth
from dispatcher.api.roster import roster_view
from dispatcher.api.server import build_api
from dispatcher.config import Settings
from dispatcher.observability.logging import configure_logging
from dispatcher.routing.roster import Roster, RosterError, parse_roster
from dispatcher.store import roster as roster_store
from dispatcher.store.db import connection, transaction

log = structlog.get_logger(__name__)


def add_subparsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = sub.add_parser("api", help="serve the HTTP API (needs DISPATCHER_DATABASE_URL)")
    api.add_argument("--port", type=int, default=None, help="default DISPATCHER_API_PORT (6080)")
    api.add_argument("--host", default=None, help="default DISPATCHER_WEB_HOST (127.0.0.1)")

    tok = sub.add_parser("tokens", help="create or revoke API tokens")
    tok_sub = tok.add_subparsers(dest="tokens_action", required=True)
    create = tok_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--actor", required=True, help="who holds it (pseudonymous, audited)")
    create.add_argument("--team", default=None, help="team id (required unless --admin)")
    create.add_argument("--admin", action="store_true", help="may act on every team")
    revoke = tok_sub.add_parser("revoke", help="revoke every live token of an actor")
    revoke.add_argument("--actor", required=True)

    ros = sub.add_parser("roster", help="load or show the roster")
    ros_sub = ros.add_subparsers(dest="roster_action", required=True)
    load = ros_sub.add_parser("load", help="validate and store a roster YAML/JSON file")
    load.add_argument("file", type=Path)
    show = ros_sub.add_parser("show", help="print the stored roster (YAML)")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.add_argument("--show-secrets", action="store_true", help="do not redact webhook secrets")


# ---------------------------------------------------------------------------------------------
# api
# ---------------------------------------------------------------------------------------------


def cmd_api(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    # --port / --host override DISPATCHER_API_PORT / DISPATCHER_WEB_HOST for this process.
    settings = settings.model_copy(
        update={
            "api_port": args.port if args.port is not None else settings.api_port,
            "web_host": args.host or settings.web_host,
        }
    )
    configure_logging(settings.log_format, settings.log_level)
    settings.dsn()  # no database configured: fail here, before the event loop starts
    # No access log: query strings carry citizen ids, and our own lines already say enough.
    web.run_app(
        build_api(settings),
        host=settings.web_host,
        port=settings.api_port,
        access_log=None,
        print=None,
    )
    return 0


# ---------------------------------------------------------------------------------------------
# tokens
# ---------------------------------------------------------------------------------------------


def _cli_actor() -> str:
    """Who ran a CLI change, for the audit line (the OS user; the CLI has no token)."""
    return f"cli:{os.environ.get('USER') or 'unknown'}"


def cmd_tokens(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)  # audit lines to stderr
    dsn = settings.dsn()

    async def run() -> int:
        async with connection(dsn) as conn:
            if args.tokens_action == "create":
                try:
                    token = await auth.create(conn, args.actor, args.team, admin=args.admin)
                except ValueError as exc:
                    print(f"tokens create: {exc}", file=sys.stderr)
                    return 2
                role = "admin" if args.admin else f"member of {args.team}"
                log.info(
                    "api_token_created",
                    actor=args.actor,
                    team_id=args.team,
                    role="admin" if args.admin else "member",
                    by=_cli_actor(),
                )
                print(
                    f"# token for {args.actor} ({role}); shown once, store it now", file=sys.stderr
                )
                print(token)
                return 0
            n = await auth.revoke(conn, args.actor)
            log.info("api_tokens_revoked", actor=args.actor, count=n, by=_cli_actor())
            print(f"revoked {n} token(s) of {args.actor}")
            return 0 if n else 1

    return asyncio.run(run())


# ---------------------------------------------------------------------------------------------
# roster
# ---------------------------------------------------------------------------------------------


def cmd_roster(args: argparse.Namespace) -> int:
    roster: Roster | None = None
    if args.roster_action == "load":
        path: Path = args.file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            return 2
        try:
            roster = parse_roster(text, source=str(path))
        except RosterError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)  # audit line to stderr
    dsn = settings.dsn()

    async def run() -> int:
        async with connection(dsn) as conn:
            if roster is not None:
                async with transaction(conn) as tx:
                    await roster_store.store_roster(tx, roster)
                version = await roster_store.roster_version(conn)
                log.info(
                    "roster_replaced",
                    actor=_cli_actor(),
                    version=version,
                    teams=len(roster.teams),
                    staff=len(roster.staff),
                )
                print(
                    f"stored roster version {version}: {len(roster.teams)} teams, "
                    f"{len(roster.staff)} staff"
                )
                return 0
            current = await roster_store.load_roster(conn)
            if current is None:
                print("no roster loaded (dispatcher roster load FILE)", file=sys.stderr)
                return 1
            data = roster_view(current, show_secrets=args.show_secrets)
            if args.json:
                print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
            else:
                print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
            return 0

    return asyncio.run(run())


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "api": cmd_api,
    "tokens": cmd_tokens,
    "roster": cmd_roster,
}
