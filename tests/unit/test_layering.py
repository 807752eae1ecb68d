"""Architecture rules: the pure core stays pure, asyncpg stays in the store, wiring stays wired.

The checker lives in ``tests/unit/architecture_check.py`` (its docstring has the details).

* Pure modules (``rules/``, ``routing/``, ``contract/``, ``errors.py``, ``ingest/decoding.py``,
  ``ingest/planner.py``, ``cases/lifecycle.py``, ``cases/pages.py`` and the package ``__init__``
  files on the way to them) import no I/O library (asyncpg, aiohttp, faust, mode, kafka,
  aiokafka, socket, ssl, subprocess, http, urllib.request, prometheus_client, structlog), neither
  directly (AST, relative imports resolved, imports inside functions included) nor transitively
  (one subprocess imports them all and records what they load and import), never read the clock
  (``datetime.now``, ``time.time``, ``time.monotonic``... in their own source) and import only
  their allow-listed first-party modules.
* Transitive means "beyond the baseline": the subprocess first imports pydantic, yaml, orjson and
  the stdlib modules the core uses and builds one pydantic model, which alone loads ``socket``
  (pydantic's plugin loader -> importlib.metadata -> email.utils -> socket). What the baseline
  loads or imports itself is allowed, so only what our modules (or libraries they add) pull in
  is reported; an ``import socket`` run by any non-baseline module still counts, even when
  ``socket`` is already loaded.
* ``asyncpg`` is imported only in ``store/`` and the composition roots ``streams/runtime.py`` and
  ``api/server.py``; only ``cli/`` imports ``streams`` or ``devstack`` (``devstack`` may import
  anything, ``streams`` itself); nothing imports ``tests`` or ``bench``.

``TestInjectedViolations`` proves each rule bites: it copies the package, injects one violation
and requires the report to grow by exactly that violation.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from tests.unit import architecture_check as arch
from tests.unit.architecture_check import Violation

ROOT = Path(__file__).resolve().parents[2] / "dispatcher"


@pytest.fixture(scope="module")
def report() -> list[Violation]:
    return arch.check(ROOT)


def broken(report: list[Violation], *rules: str) -> list[str]:
    return [str(v) for v in report if v.rule in rules]


class TestLayering:
    def test_every_configured_pure_module_exists(self) -> None:
        """Each pure package or module named by the rules exists, so none is silently unchecked."""
        modules = arch.pure_modules(ROOT)
        configured = arch.configured_pure_prefixes(ROOT)
        assert [p for p in configured if not any(arch.under(m, (p,)) for m in modules)] == []

    def test_pure_core_imports_no_io_library(self, report: list[Violation]) -> None:
        """No pure module imports an I/O library, directly or transitively."""
        assert broken(report, arch.PURE_IO) == []

    def test_pure_core_never_reads_the_clock(self, report: list[Violation]) -> None:
        """No pure module calls or references datetime.now, time.time or another clock read."""
        assert broken(report, arch.PURE_CLOCK) == []

    def test_pure_core_imports_only_allowed_first_party_modules(
        self, report: list[Violation]
    ) -> None:
        """Each pure module imports only the first-party modules on its allow-list."""
        assert broken(report, arch.PURE_FIRST_PARTY) == []

    def test_pure_core_imports_cleanly(self, report: list[Violation]) -> None:
        """Every module parses and every pure module imports in a fresh interpreter."""
        assert broken(report, arch.PURE_IMPORT_ERROR, arch.SYNTAX) == []

    def test_asyncpg_only_in_store_and_composition_roots(self, report: list[Violation]) -> None:
        """asyncpg is imported only under store/ and in streams/runtime.py and api/server.py."""
        assert broken(report, arch.ASYNCPG) == []

    def test_only_the_cli_imports_streams_and_devstack(self, report: list[Violation]) -> None:
        """Only cli/ imports dispatcher.streams or dispatcher.devstack."""
        assert broken(report, arch.WIRING) == []

    def test_nothing_imports_tests_or_bench(self, report: list[Violation]) -> None:
        """No module under dispatcher/ imports the tests or bench packages."""
        assert broken(report, arch.TESTS_OR_BENCH) == []


# --- proof: every kind of violation, injected into a copy, is reported -------------------------


def append(relative: str, code: str) -> Callable[[Path], None]:
    """An injection that appends ``code`` to the module at ``relative`` (under the root)."""

    def inject(root: Path) -> None:
        path = root / relative
        path.write_text(path.read_text(encoding="utf-8") + "\n" + dedent(code), encoding="utf-8")

    return inject


def create(relative: str, code: str) -> Callable[[Path], None]:
    """An injection that writes a new file at ``relative`` (under the root's parent)."""

    def inject(root: Path) -> None:
        (root.parent / relative).write_text(dedent(code), encoding="utf-8")

    return inject


@dataclass(frozen=True)
class Injection:
    id: str
    steps: tuple[Callable[[Path], None], ...]
    expected: Violation


INJECTIONS = [
    Injection(
        "relative-store-import-into-rules",
        (append("rules/news2.py", "from ..store import batches\n"),),
        Violation(arch.PURE_FIRST_PARTY, "dispatcher.rules.news2", "dispatcher.store.batches"),
    ),
    Injection(
        "absolute-store-import-into-rules",
        (append("rules/first_route.py", "from dispatcher.store.batches import StoredBatch\n"),),
        Violation(
            arch.PURE_FIRST_PARTY, "dispatcher.rules.first_route", "dispatcher.store.batches"
        ),
    ),
    Injection(
        "socket-via-third-party-helper",
        (
            create("arch_probe_nethelper.py", "import socket\n"),
            append("rules/news2.py", "import arch_probe_nethelper\n"),
        ),
        Violation(arch.PURE_IO, "dispatcher.rules.news2", "socket"),
    ),
    Injection(
        "socket-via-first-party-shell-helper",
        (
            create("dispatcher/observability/wire.py", "import socket\n"),
            append("rules/plausibility.py", "from dispatcher.observability import wire\n"),
        ),
        Violation(
            arch.PURE_FIRST_PARTY, "dispatcher.rules.plausibility", "dispatcher.observability.wire"
        ),
    ),
    Injection(
        "socket-in-router",
        (append("routing/router.py", "import socket\n"),),
        Violation(arch.PURE_IO, "dispatcher.routing.router", "socket"),
    ),
    Injection(
        "urllib-request-in-decoding",
        (append("ingest/decoding.py", "from urllib import request\n"),),
        Violation(arch.PURE_IO, "dispatcher.ingest.decoding", "urllib.request"),
    ),
    Injection(
        "shell-import-in-pure-package-init",
        (append("cases/__init__.py", "import dispatcher.clock\n"),),
        Violation(arch.PURE_FIRST_PARTY, "dispatcher.cases", "dispatcher.clock"),
    ),
    Injection(
        "datetime-now-in-lifecycle",
        (
            append(
                "cases/lifecycle.py",
                """
                def _stamp() -> datetime:
                    return datetime.now()
                """,
            ),
        ),
        Violation(arch.PURE_CLOCK, "dispatcher.cases.lifecycle", "datetime.datetime.now"),
    ),
    Injection(
        "time-time-in-planner",
        (
            append(
                "ingest/planner.py",
                """
                import time


                def _stamp() -> float:
                    return time.time()
                """,
            ),
        ),
        Violation(arch.PURE_CLOCK, "dispatcher.ingest.planner", "time.time"),
    ),
    Injection(
        "aliased-monotonic-in-roster",
        (
            append(
                "routing/roster.py",
                """
                from time import monotonic as _tick


                def _elapsed() -> float:
                    return _tick()
                """,
            ),
        ),
        Violation(arch.PURE_CLOCK, "dispatcher.routing.roster", "time.monotonic"),
    ),
    Injection(
        "utcnow-reference-in-contract",
        (append("contract/events.py", "_DEFAULT_CLOCK = datetime.utcnow\n"),),
        Violation(arch.PURE_CLOCK, "dispatcher.contract.events", "datetime.datetime.utcnow"),
    ),
    Injection(
        "asyncpg-inside-function-in-api",
        (
            append(
                "api/models.py",
                """
                def _connect() -> object:
                    import asyncpg

                    return asyncpg
                """,
            ),
        ),
        Violation(arch.ASYNCPG, "dispatcher.api.models", "asyncpg"),
    ),
    Injection(
        "devstack-in-processor",
        (append("ingest/processor.py", "from dispatcher.devstack import stack\n"),),
        Violation(arch.WIRING, "dispatcher.ingest.processor", "dispatcher.devstack.stack"),
    ),
    Injection(
        "streams-in-reconcile",
        (append("ops/reconcile.py", "import dispatcher.streams.app\n"),),
        Violation(arch.WIRING, "dispatcher.ops.reconcile", "dispatcher.streams.app"),
    ),
    Injection(
        "tests-import-in-notify",
        (append("notify/signing.py", "from tests import helpers\n"),),
        Violation(arch.TESTS_OR_BENCH, "dispatcher.notify.signing", "tests"),
    ),
]

BY_ID = {injection.id: injection for injection in INJECTIONS}


@dataclass(frozen=True)
class Checked:
    root: Path
    before: set[Violation]  # the report on the pristine copy
    after: set[Violation]  # the report on the injected copy


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    """Injection id -> its copy and the reports; copies are checked in parallel (fast file).

    The pristine copy is a snapshot, since others edit the tree meanwhile.
    """
    pristine = tmp_path_factory.mktemp("pristine") / ROOT.name
    shutil.copytree(ROOT, pristine, ignore=shutil.ignore_patterns("__pycache__"))
    roots = {"": pristine}
    for injection in INJECTIONS:
        root = tmp_path_factory.mktemp(injection.id) / ROOT.name
        shutil.copytree(pristine, root)
        for step in injection.steps:
            step(root)
        roots[injection.id] = root
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = dict(zip(roots, pool.map(arch.check, roots.values()), strict=True))
    before = set(reports.pop(""))
    return {key: Checked(roots[key], before, set(found)) for key, found in reports.items()}


class TestInjectedViolations:
    @pytest.mark.parametrize("injection", INJECTIONS, ids=lambda i: i.id)
    def test_checker_reports_exactly_the_injected_violation(
        self, injection: Injection, checked: dict[str, Checked]
    ) -> None:
        """The report on a copy with one injected violation is the pristine report plus it."""
        result = checked[injection.id]
        assert injection.expected not in result.before
        added, lost = sorted(result.after - result.before), sorted(result.before - result.after)
        assert (added, lost) == ([injection.expected], []), [str(v) for v in added + lost]

    def test_static_pass_resolves_relative_imports(self, checked: dict[str, Checked]) -> None:
        """``from ..store import batches`` in rules/ is found from the source alone."""
        result = checked["relative-store-import-into-rules"]
        expected = BY_ID["relative-store-import-into-rules"].expected
        assert expected in arch.static_violations(result.root)

    def test_import_probe_follows_imports_the_source_does_not_show(
        self, checked: dict[str, Checked]
    ) -> None:
        """socket imported by a helper outside the package is found only by importing rules/."""
        result = checked["socket-via-third-party-helper"]
        expected = BY_ID["socket-via-third-party-helper"].expected
        assert expected not in arch.static_violations(result.root)
        assert expected in arch.import_violations(result.root)
