"""``python -m tests.mutation``: mutation testing of the pure core, one module at a time.

Why our own and not mutmut: mutmut >= 3.8 requires click >= 8.4.2 while faust-streaming pins
click < 8.4, and mutmut <= 3.7 fails on pytest 9 (``'Function' object has no attribute
'_nodeid'`` while collecting its stats). This runner is small on purpose:

* it copies the working tree (``dispatcher/``, ``tests/``, ``pyproject.toml``) to a temporary
  directory per job and never touches the tree it was started from;
* for each module in ``TARGETS`` it applies ONE mutation at a time (``tests.mutation.mutator``:
  comparison, arithmetic, boolean and constant flips), writes the mutated module into the copy
  and runs only that module's unit tests in a forked child (``pytest -x``; bytecode caching off,
  so a mutant is never served from a stale ``.pyc``);
* a mutant is *killed* when the tests fail (or time out), *survived* when they pass;
* before mutating, the unmutated tests must pass in the copy, otherwise the run stops.

The kill rate is killed / all mutants, with no mutant excluded by hand. Exit status 1 when it is
below ``--min-rate`` (default 80 %).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.mutation.mutator import Mutant, mutants_of

ROOT = Path(__file__).resolve().parents[2]

# module -> the unit tests that are meant to pin its behaviour (only these run per mutant).
# The hypothesis fuzz files are left out: they would run for seconds per surviving mutant.
TARGETS: dict[str, tuple[str, ...]] = {
    "dispatcher/rules/news2.py": (
        "tests/unit/rules/test_rules_news2.py",
        "tests/unit/rules/test_news2_edges.py",
    ),
    "dispatcher/routing/router.py": (
        "tests/unit/routing/test_router.py",
        "tests/unit/routing/test_router_edges.py",
    ),
    "dispatcher/cases/lifecycle.py": (
        "tests/unit/cases/test_lifecycle.py",
        "tests/unit/cases/test_lifecycle_ack.py",
        "tests/unit/cases/test_lifecycle_edges.py",
    ),
    "dispatcher/ingest/planner.py": (
        "tests/unit/ingest/test_processor.py",
        "tests/unit/ingest/test_identity.py",
        "tests/unit/contract/test_dead_letter_bounds.py",
        "tests/unit/ingest/test_time_bounds.py",
        "tests/unit/ingest/test_citizen_order.py",
        "tests/unit/ingest/test_planner_edges.py",
    ),
}

# Imported once in the parent before forking (third-party only: a first-party module could
# import the module under test and pin the unmutated version in the children).
WRONG_IMPORT = 97

PRELOAD = ("pydantic", "yaml", "orjson", "hypothesis", "pytest", "structlog", "prometheus_client")


@dataclass(frozen=True)
class Result:
    module: str
    index: int
    line: int
    description: str
    outcome: str  # killed | survived | timeout
    seconds: float


# What the unit tests read: the package, the tests, their config, the schemas and examples.
COPIED = ("dispatcher", "tests", "schemas", "pyproject.toml")


def copy_tree(dest: Path, rev: str | None) -> None:
    """The working tree (or the commit ``rev``) into ``dest``: package, tests, config."""
    if rev is not None:
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, *COPIED],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED[:-1]:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def start_tests(workdir: Path, tests: tuple[str, ...]) -> int:
    """Fork a child that runs ``tests`` inside ``workdir``; its pid (exit 0 = tests passed)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            os.chdir(workdir)
            sys.path.insert(0, str(workdir))
            # This runner's own package is ROOT/tests: the copy's tests must not resolve to it.
            for name in [n for n in sys.modules if n == "tests" or n.startswith("tests.")]:
                del sys.modules[name]
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import dispatcher

            if not Path(dispatcher.__file__).resolve().is_relative_to(workdir.resolve()):
                code = WRONG_IMPORT  # the copy's package is not the one under test
                raise SystemExit(code)
            import pytest

            code = int(
                pytest.main(
                    [
                        *tests,
                        "-x",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        "--hypothesis-seed=0",
                        "-o",
                        "addopts=",
                        "-W",
                        "ignore",
                    ]
                )
            )
        finally:
            os._exit(code)
    return pid


def poll(pid: int) -> int | None:
    """The child's exit code, or None while it runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


def run_tests(workdir: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float]:
    """Run ``tests`` once in ``workdir``: (outcome, seconds)."""
    started = time.monotonic()
    pid = start_tests(workdir, tests)
    while (code := poll(pid)) is None:
        if time.monotonic() - started > timeout_s:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - started
        time.sleep(0.02)
    return ("survived" if code == 0 else "killed"), time.monotonic() - started


@contextlib.contextmanager
def workdirs(jobs: int, rev: str | None) -> Iterator[list[Path]]:
    base = Path(tempfile.mkdtemp(prefix="dsp-mutation-"))
    try:
        dirs = []
        for i in range(jobs):
            d = base / f"job{i}"
            copy_tree(d, rev)
            dirs.append(d)
        yield dirs
    finally:
        shutil.rmtree(base, ignore_errors=True)


def mutate_module(
    module: str, tests: tuple[str, ...], dirs: list[Path], timeout_s: float
) -> list[Result]:
    """Every mutant of ``module``, one child per job directory at a time (forked from this,
    the only thread, so a child never inherits a lock another thread held)."""
    source = (dirs[0] / module).read_text(encoding="utf-8")
    todo = list(reversed(mutants_of(source)))
    free = list(dirs)
    running: dict[int, tuple[Mutant, Path, float]] = {}
    results: list[Result] = []
    while todo or running:
        while todo and free:
            m, d = todo.pop(), free.pop()
            (d / module).write_text(m.source, encoding="utf-8")
            running[start_tests(d, tests)] = (m, d, time.monotonic())
        for pid, (m, d, t0) in list(running.items()):
            code = poll(pid)
            secs = time.monotonic() - t0
            if code is None and secs <= timeout_s:
                continue
            if code is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                outcome = "timeout"
            elif code == WRONG_IMPORT:
                raise RuntimeError(f"the child imported dispatcher from outside {d}")
            else:
                outcome = "survived" if code == 0 else "killed"
            del running[pid]
            (d / module).write_text(source, encoding="utf-8")
            free.append(d)
            results.append(Result(module, m.index, m.line, m.description, outcome, round(secs, 2)))
        time.sleep(0.02)
    return sorted(results, key=lambda r: r.index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("--module", action="append", help="only this module (repeatable)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--min-rate", type=float, default=80.0, help="fail below this (%%)")
    parser.add_argument("--json", type=Path, help="write every mutant's result here")
    parser.add_argument("--show-survivors", action="store_true", help="list surviving mutants")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        help="leave this test file out (repeatable; e.g. to measure before new tests)",
    )
    parser.add_argument(
        "--rev", help="mutate this commit (git archive) instead of the working tree, e.g. HEAD"
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    sys.dont_write_bytecode = True
    for name in PRELOAD:
        __import__(name)
    targets = {m: t for m, t in TARGETS.items() if not args.module or m in args.module}
    if args.module and set(args.module) - set(targets):
        parser.error(f"unknown module(s): {sorted(set(args.module) - set(targets))}")
    results: list[Result] = []
    started = time.monotonic()
    with workdirs(max(1, args.jobs), args.rev) as dirs:
        for module, listed in targets.items():
            tests = tuple(t for t in listed if t not in args.without)
            missing = [t for t in tests if not (dirs[0] / t).exists()]
            tests_here = tuple(t for t in tests if t not in missing)
            if missing:
                print(f"{module}: test file(s) not found, skipped: {missing}")
            baseline, secs = run_tests(dirs[0], tests_here, 600.0)
            if baseline != "survived":
                print(f"{module}: its tests fail WITHOUT a mutation ({baseline}); stopping")
                return 2
            timeout_s = max(10.0, 5 * secs)
            t0 = time.monotonic()
            got = mutate_module(module, tests_here, dirs, timeout_s)
            results.extend(got)
            killed = sum(r.outcome != "survived" for r in got)
            print(
                f"{module}: {killed}/{len(got)} killed "
                f"({100.0 * killed / max(1, len(got)):.1f} %) in {time.monotonic() - t0:.0f} s"
                f" [tests: {' '.join(tests_here)}]"
            )
            if args.show_survivors:
                for r in got:
                    if r.outcome == "survived":
                        print(f"    survived  line {r.line:4d}  {r.description}")
    killed = sum(r.outcome != "survived" for r in results)
    rate = 100.0 * killed / max(1, len(results))
    timeouts = sum(r.outcome == "timeout" for r in results)
    print(
        f"TOTAL: {killed}/{len(results)} mutants killed = {rate:.1f} % "
        f"({timeouts} by timeout) in {time.monotonic() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0 if rate >= args.min_rate else 1


if __name__ == "__main__":
    raise SystemExit(main())
