"""The mutation runner's mutator (``make mutation``): one flip per site, every mutant compiles
and differs from the original, docstrings, strings and annotations are left alone."""

from __future__ import annotations

import ast

from tests.mutation.mutator import mutants_of, sites_of

SOURCE = '''
"""Docstring 1 stays."""
from typing import Literal

LIMIT: int = 5


def band(x: int, flag: bool = False) -> Literal[1, 2]:
    """Docstring stays."""
    if x <= LIMIT and not flag:
        return 1
    y = -x + 2 * x
    y += 1
    return 2 if y in (3, 4) else 1
'''


def test_each_operator_constant_and_comparison_is_one_site() -> None:
    assert [d for _, d in sites_of(SOURCE)] == [
        "5 -> 6",
        "False -> True",
        "<= -> <",
        "not x -> x",
        "and -> or",
        "1 -> 2",
        "-x -> x",
        "2 -> 3",
        "* -> /",
        "+ -> -",
        "1 -> 2",
        "+= -> -=",
        "3 -> 4",
        "4 -> 5",
        "in -> not in",
        "2 -> 3",
        "1 -> 2",
    ]


def test_every_mutant_compiles_and_differs_in_one_place() -> None:
    original = ast.dump(ast.parse(SOURCE))
    mutants = mutants_of(SOURCE)
    assert len(mutants) == len(sites_of(SOURCE))
    for m in mutants:
        compile(m.source, "<mutant>", "exec")
        assert ast.dump(ast.parse(m.source)) != original
        assert '"""Docstring stays."""' in m.source or "'Docstring stays.'" in m.source
        assert "Literal[1, 2]" in m.source  # annotations are never mutated
