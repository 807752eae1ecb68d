"""The architecture checker behind ``tests/unit/test_layering.py``.

``check(root)`` returns every layering violation of the package at ``root`` (a directory named
like the package, e.g. ``.../dispatcher``). It combines a static pass over every module's AST
with one subprocess that imports the pure modules and watches what they load.

Static pass (each file's whole AST, so imports inside functions and ``if TYPE_CHECKING:`` count;
relative imports are resolved; ``importlib.import_module("x")`` / ``__import__("x")`` with a
literal name count as imports):

* ``pure-io``: a pure module imports a library of ``FORBIDDEN_IN_PURE``.
* ``pure-clock``: a pure module calls or references a clock read of ``CLOCK_READS`` (aliases
  such as ``from time import monotonic as tick`` are resolved).
* ``pure-first-party``: a pure module imports a first-party module outside its allow-list.
* ``asyncpg-outside-store``: asyncpg is imported outside ``store/`` and the composition roots.
* ``wiring-only-from-cli``: ``streams``/``devstack`` imported from outside ``cli/`` (``devstack``
  may import anything, ``streams`` may import itself).
* ``no-tests-or-bench``: the package imports the top-level ``tests`` or ``bench`` packages.

Import pass (one ``python -c`` subprocess, ``PYTHONPATH`` = the parent of ``root``): it first
imports the baseline (``BASELINE_IMPORTS``: pydantic, yaml, orjson and the stdlib modules the core
uses, and it defines and validates one pydantic model), snapshots ``sys.modules``, then imports
every pure module (dependencies first) with two recorders installed: a ``sys.meta_path`` finder
that sees every module loaded for the first time, and a ``builtins.__import__`` wrapper that sees
every import statement run by a module that is not part of the baseline, even of a module that
is already loaded. Each event is charged to the innermost first-party frame on the stack.
The baseline matters: pydantic's plugin loader alone loads ``email.utils`` and therefore
``socket`` the first time any model class is built, so a plain ``sys.modules`` diff would flag
every module that defines a model; anything the baseline loads or imports itself is allowed.
On a chain only the outermost forbidden module is reported (asyncpg's own ``ssl`` is not).
Loads charged to a shell module (e.g. asyncpg loaded by ``store.batches``) are not ``pure-io``:
the pure module that imported the shell module is reported as ``pure-first-party``.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PURE_IO = "pure-io"
PURE_CLOCK = "pure-clock"
PURE_FIRST_PARTY = "pure-first-party"
PURE_IMPORT_ERROR = "pure-import-error"
ASYNCPG = "asyncpg-outside-store"
WIRING = "wiring-only-from-cli"
TESTS_OR_BENCH = "no-tests-or-bench"
SYNTAX = "syntax-error"
RULES = (PURE_IO, PURE_CLOCK, PURE_FIRST_PARTY, PURE_IMPORT_ERROR, ASYNCPG, WIRING, TESTS_OR_BENCH)

FORBIDDEN_IN_PURE = (
    "asyncpg",
    "aiohttp",
    "faust",
    "mode",
    "kafka",
    "aiokafka",
    "socket",
    "ssl",
    "subprocess",
    "http",
    "urllib.request",
    "prometheus_client",
    "structlog",
)

CLOCK_READS = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
        # A bare name that no import binds resolves to itself: ``datetime.now()`` and friends.
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "date.today",
    }
)

# Allowed third-party libraries and stdlib modules of the pure core: what they load is allowed.
BASELINE_IMPORTS = (
    "pydantic",
    "yaml",
    "orjson",
    "base64",
    "collections.abc",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "hashlib",
    "importlib.resources",
    "json",
    "math",
    "pathlib",
    "re",
    "typing",
    "uuid",
    "zoneinfo",
)

# Pure module or package (relative to the root package) -> first-party prefixes it may import.
# Every module imports itself implicitly; the packages on the way to a pure module (``dispatcher``,
# ``dispatcher.cases``, ``dispatcher.ingest``) run on import, so they are pure too and may import
# pure modules only. ``contract`` (the bottom layer) may use any pure module.
PURE_ALLOWED: Mapping[str, tuple[str, ...]] = {
    "rules": ("contract", "errors", "rules"),
    "routing": ("contract", "errors", "routing"),
    "cases.lifecycle": ("contract", "errors", "routing", "cases.pages"),
    "cases.pages": ("contract", "errors", "routing"),
    "ingest.decoding": ("contract", "errors", "rules", "ingest.decoding"),
    "ingest.planner": ("contract", "errors", "rules", "ingest.decoding"),
    "errors": (),
    "evaluate": (
        "contract",
        "errors",
        "rules",
        "routing",
        "cases.lifecycle",
        "cases.pages",
        "ingest.decoding",
        "ingest.planner",
        "evaluate",
    ),
}
PURE_ANY = ("contract",)  # pure, and may import any pure module

# Only these may import asyncpg: the store and the composition roots.
ASYNCPG_ALLOWED = ("store", "streams.runtime", "api.server")
# Package -> importers allowed to import it, beside the package itself.
WIRING_ALLOWED: Mapping[str, tuple[str, ...]] = {
    "streams": ("cli", "devstack"),
    "devstack": ("cli",),
}
TOP_LEVEL_FORBIDDEN = ("tests", "bench")


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule: ``module`` (dotted name) breaks ``rule`` by importing/using ``target``."""

    rule: str
    module: str
    target: str
    detail: str = field(default="", compare=False)

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"[{self.rule}] {self.module} -> {self.target}{suffix}"


@dataclass(frozen=True)
class Module:
    """One source file of the package."""

    name: str
    path: Path
    is_package: bool
    tree: ast.Module | None  # None: the file does not parse


@dataclass(frozen=True)
class ImportRef:
    """One import in a module: ``target`` (absolute), plus names it may also import."""

    importer: str
    target: str
    lineno: int
    also: tuple[str, ...] = ()  # ``from x import y`` with a third-party x: ``x.y`` may be a module

    @property
    def names(self) -> tuple[str, ...]:
        return (self.target, *self.also)


def under(name: str, prefixes: Iterable[str]) -> str | None:
    """The first of ``prefixes`` that ``name`` equals or lies under, else None."""
    for prefix in prefixes:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return None


class Layout:
    """The rules above, qualified with the root package's name."""

    def __init__(self, package: str) -> None:
        self.package = package
        q = self.qualify
        self.allowed = {q(k): tuple(q(v) for v in vs) for k, vs in PURE_ALLOWED.items()}
        self.pure_any = tuple(q(p) for p in PURE_ANY)
        self.pure_prefixes = (*self.allowed, *self.pure_any)
        self.ancestors = {
            prefix.rsplit(".", i)[0]
            for prefix in self.pure_prefixes
            for i in range(1, prefix.count(".") + 1)
        }
        self.asyncpg_allowed = tuple(q(p) for p in ASYNCPG_ALLOWED)
        self.wiring = {q(k): tuple(q(v) for v in vs) for k, vs in WIRING_ALLOWED.items()}

    def qualify(self, relative: str) -> str:
        return f"{self.package}.{relative}"

    def first_party(self, name: str) -> bool:
        return under(name, (self.package,)) is not None

    def is_pure(self, name: str) -> bool:
        return name in self.ancestors or under(name, self.pure_prefixes) is not None

    def may_import(self, importer: str, target: str) -> bool:
        """Whether pure ``importer`` may import first-party ``target``."""
        if under(target, (importer,)):
            return True
        if importer in self.ancestors or under(importer, self.pure_any):
            return self.is_pure(target)
        # The longest configured prefix decides: ``cases.lifecycle`` before ``cases``.
        key = max((k for k in self.allowed if under(importer, (k,))), key=len)
        return under(target, self.allowed[key]) is not None


def discover(root: Path) -> dict[str, Module]:
    """Every ``*.py`` under ``root``, by dotted module name."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        modules[name] = Module(name, path, is_package, _parse(path.read_text(encoding="utf-8")))
    return modules


@functools.cache
def _parse(source: str) -> ast.Module | None:
    """The AST of ``source`` (never mutated, so copies of a file share it); None if invalid."""
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _resolve(module: Module, name: str | None, level: int) -> str | None:
    """The absolute module of ``from <level dots><name> import ...`` in ``module``."""
    if level == 0:
        return name
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def _literal_import(node: ast.Call) -> str | None:
    """``importlib.import_module("x")``, ``import_module("x")`` or ``__import__("x")`` -> x."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def imports_of(module: Module, known: Mapping[str, Module], layout: Layout) -> Iterator[ImportRef]:
    """Every import anywhere in ``module``'s AST, with relative imports made absolute."""
    if module.tree is None:
        return
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(module.name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.module, node.level)
            if base is None:
                yield ImportRef(module.name, "." * node.level + (node.module or ""), node.lineno)
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if alias.name == "*":
                    yield ImportRef(module.name, base, node.lineno)
                elif sub in known:
                    yield ImportRef(module.name, sub, node.lineno)
                elif layout.first_party(base):
                    yield ImportRef(module.name, base, node.lineno)
                else:
                    yield ImportRef(module.name, base, node.lineno, also=(sub,))
        elif isinstance(node, ast.Call) and (name := _literal_import(node)):
            if name.startswith("."):
                stripped = name.lstrip(".")
                resolved = _resolve(module, stripped or None, len(name) - len(stripped))
                name = resolved or name
            yield ImportRef(module.name, name, node.lineno)


def clock_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, qualified name) of every clock read referenced in ``tree``."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualified(expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id, expr.id)
        if isinstance(expr, ast.Attribute):
            owner = qualified(expr.value)
            return f"{owner}.{expr.attr}" if owner else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
            name = qualified(node)
            if name in CLOCK_READS:
                yield node.lineno, name


def _rel(module: Module, root: Path) -> str:
    return str(module.path.relative_to(root.parent))


def static_violations(root: Path, modules: Mapping[str, Module] | None = None) -> set[Violation]:
    """Every violation visible in the source of the package at ``root``."""
    layout = Layout(root.name)
    modules = discover(root) if modules is None else modules
    found: set[Violation] = set()
    for module in modules.values():
        where = _rel(module, root)
        if module.tree is None:
            found.add(Violation(SYNTAX, module.name, "", where))
            continue
        pure = layout.is_pure(module.name)
        for ref in imports_of(module, modules, layout):
            at = f"{where}:{ref.lineno}"
            for name in ref.names:
                if (top := name.split(".")[0]) in TOP_LEVEL_FORBIDDEN:
                    found.add(Violation(TESTS_OR_BENCH, module.name, top, at))
            if any(under(n, ("asyncpg",)) for n in ref.names) and not under(
                module.name, layout.asyncpg_allowed
            ):
                found.add(Violation(ASYNCPG, module.name, "asyncpg", at))
            for wired, importers in layout.wiring.items():
                if under(ref.target, (wired,)) and not under(module.name, (wired, *importers)):
                    found.add(Violation(WIRING, module.name, ref.target, at))
            if not pure:
                continue
            for name in ref.names:
                if lib := under(name, FORBIDDEN_IN_PURE):
                    found.add(Violation(PURE_IO, module.name, lib, at))
            if layout.first_party(ref.target) and not layout.may_import(module.name, ref.target):
                found.add(Violation(PURE_FIRST_PARTY, module.name, ref.target, at))
        if pure:
            for lineno, name in clock_reads(module.tree):
                found.add(Violation(PURE_CLOCK, module.name, name, f"{where}:{lineno}"))
    return found


def import_order(modules: Mapping[str, Module], layout: Layout) -> list[str]:
    """The pure modules, each after the pure modules it imports (cycles broken by name order).

    Leaves first, so a module is imported on its own before anything that imports it: an
    injected import cycle through a shell module then still imports cleanly.
    """
    pure = sorted(name for name, m in modules.items() if layout.is_pure(name) and m.tree)
    graph = {
        name: sorted({ref.target for ref in imports_of(modules[name], modules, layout)} & set(pure))
        for name in pure
    }
    order: list[str] = []
    entered: set[str] = set()

    def visit(name: str) -> None:
        if name in entered:
            return
        entered.add(name)
        for dependency in graph[name]:
            visit(dependency)
        order.append(name)

    for name in pure:
        visit(name)
    return order


# Runs in the subprocess: argv[1] is a JSON config; prints MARKER + JSON facts on the last line.
MARKER = "@@architecture-probe@@"
PROBE = r"""
import builtins, importlib, importlib.util, json, sys

cfg = json.loads(sys.argv[1])
ROOT, WATCH = cfg["root"], tuple(cfg["watch"])
for _name in cfg["baseline"]:
    importlib.import_module(_name)
import datetime, orjson, pydantic, yaml


class _Baseline(pydantic.BaseModel):
    at: datetime.datetime
    n: int = 0


_Baseline.model_validate({"at": "2026-01-01T00:00:00Z"}).model_dump_json()
yaml.safe_load("a: 1")
orjson.dumps({"a": 1})
BASELINE = frozenset(sys.modules)
facts, seen, current = [], set(), [None]


def _first_party(name):
    return name == ROOT or name.startswith(ROOT + ".")


def _watched(name):
    for lib in WATCH:
        if name == lib or name.startswith(lib + "."):
            return lib
    return None


def _record(kind, name, loaded, frame):
    stack = []
    while frame is not None:
        mod = frame.f_globals.get("__name__") or "?"
        ours = frame.f_code in HOOKS or mod.startswith(("importlib", "_frozen_importlib"))
        if not ours and stack[-1:] != [mod]:
            stack.append(mod)
        frame = frame.f_back
    culprit = next((m for m in stack if _first_party(m)), current[0])
    via = []
    for mod in stack:
        if mod in (culprit, "__main__"):
            break
        via.append(mod)
    via.reverse()
    if kind == "watched" and any(_watched(m) for m in via):
        return  # an outer forbidden module brought this one in: report that one only
    key = (kind, name, culprit)
    if key not in seen:
        seen.add(key)
        facts.append({"kind": kind, "name": name, "culprit": culprit, "via": via + [loaded]})


class _Loads:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if _watched(name):
            _record("watched", _watched(name), name, sys._getframe(1))
        elif _first_party(name):
            _record("first-party", name, name, sys._getframe(1))
        return None


_original_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__")
    if importer and importer not in BASELINE and importer != "__main__":
        absolute = name
        if level:
            try:
                absolute = importlib.util.resolve_name(
                    "." * level + name, (globals or {}).get("__package__") or ""
                )
            except (ImportError, ValueError):
                pass
        for candidate in [absolute] + [absolute + "." + f for f in fromlist or () if f != "*"]:
            if _watched(candidate):
                _record("watched", _watched(candidate), candidate, sys._getframe(1))
    return _original_import(name, globals, locals, fromlist, level)


HOOKS = {_import.__code__, _Loads.find_spec.__code__, _record.__code__}
sys.meta_path.insert(0, _Loads())
builtins.__import__ = _import
for _target in cfg["targets"]:
    current[0] = _target
    try:
        importlib.import_module(_target)
    except Exception as exc:
        facts.append({"kind": "import-error", "name": type(exc).__name__ + ": " + str(exc),
                      "culprit": _target, "via": []})
builtins.__import__ = _original_import
root_file = getattr(sys.modules.get(ROOT), "__file__", None)
print("\n" + cfg["marker"] + json.dumps({"facts": facts, "root_file": root_file}))
"""


def run_probe(root: Path, targets: list[str], python: str = sys.executable) -> list[dict[str, Any]]:
    """Import ``targets`` from the package at ``root`` in a fresh interpreter; the raw facts."""
    config = {
        "root": root.name,
        "watch": FORBIDDEN_IN_PURE,
        "baseline": BASELINE_IMPORTS,
        "targets": targets,
        "marker": MARKER,
    }
    env = {**os.environ, "PYTHONPATH": str(root.parent)}
    proc = subprocess.run(
        [python, "-B", "-c", PROBE, json.dumps(config)],
        cwd=root.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"import probe failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(MARKER) :])
    root_file = result["root_file"]
    if root_file is None or not Path(root_file).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"probe imported {root.name} from {root_file}, not from {root}")
    facts: list[dict[str, Any]] = result["facts"]
    return facts


def import_violations(
    root: Path, modules: Mapping[str, Module] | None = None, python: str = sys.executable
) -> set[Violation]:
    """Violations seen by importing every pure module of the package at ``root``."""
    layout = Layout(root.name)
    modules = discover(root) if modules is None else modules
    found: set[Violation] = set()
    shell_loads: dict[str, dict[str, str]] = {}
    for fact in run_probe(root, import_order(modules, layout), python):
        kind, name, culprit = fact["kind"], fact["name"], fact["culprit"]
        chain = " -> ".join([culprit, *fact["via"]])
        if kind == "import-error":
            found.add(Violation(PURE_IMPORT_ERROR, culprit, name))
        elif culprit is None or not layout.is_pure(culprit):
            continue  # charged to a shell module: its pure importer is reported statically
        elif kind == "watched":
            found.add(Violation(PURE_IO, culprit, name, f"loads {chain}"))
        elif not layout.is_pure(name):
            shell_loads.setdefault(culprit, {})[name] = chain
    for culprit, loaded in shell_loads.items():
        for name, chain in loaded.items():
            # ``from ..store import batches`` loads store and store.batches: keep the latter.
            if not any(other.startswith(name + ".") for other in loaded):
                found.add(Violation(PURE_FIRST_PARTY, culprit, name, f"loads {chain}"))
    return found


def check(root: Path, python: str = sys.executable) -> list[Violation]:
    """Every architecture violation of the package at ``root``, sorted."""
    modules = discover(root)
    return sorted(static_violations(root, modules) | import_violations(root, modules, python))


def pure_modules(root: Path) -> list[str]:
    """The modules of the package at ``root`` that the pure-core rules apply to."""
    layout = Layout(root.name)
    return sorted(name for name in discover(root) if layout.is_pure(name))


def configured_pure_prefixes(root: Path) -> tuple[str, ...]:
    """The pure packages and modules named by the rules, qualified with the package name."""
    return Layout(root.name).pure_prefixes
