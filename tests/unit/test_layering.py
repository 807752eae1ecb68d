"""Architecture rules: the pure core stays pure, and nothing depends on the faust wiring."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "dispatcher"
RULES_MAY_IMPORT = ("dispatcher.contract", "dispatcher.errors", "dispatcher.rules", "pydantic", "yaml")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def is_stdlib(module: str) -> bool:
    import sys

    return module.split(".", maxsplit=1)[0] in sys.stdlib_module_names or module == "__future__"


class TestLayering:
    def test_rules_import_only_events_stdlib_and_pydantic(self) -> None:
        """dispatcher/rules/ imports nothing that does I/O (no kafka, faust, asyncpg...)."""
        offenders = {
            f"{path.name}: {mod}"
            for path in (PKG / "rules").rglob("*.py")
            for mod in imports_of(path)
            if not is_stdlib(mod) and not mod.startswith(RULES_MAY_IMPORT)
        }
        assert offenders == set()

    def test_nothing_imports_streams_but_the_cli(self) -> None:
        """Only the CLI's worker command imports dispatcher.streams."""
        offenders = {
            str(path.relative_to(PKG))
            for path in PKG.rglob("*.py")
            if "streams" not in path.parts
            and "cli" not in path.parts
            and any(m.startswith("dispatcher.streams") for m in imports_of(path))
        }
        assert offenders == set()

    def test_pipeline_does_no_io(self) -> None:
        """The batch planner imports no I/O library."""
        io_libs = ("asyncpg", "faust", "kafka", "aiohttp", "socket", "subprocess")
        mods = imports_of(PKG / "ingest" / "planner.py")
        assert not [m for m in mods if m.startswith(io_libs)]
