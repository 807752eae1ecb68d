"""One mutation at a time over a module's AST: the operators a real slip would change.

* comparisons: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``,
  ``is`` <-> ``is not``
* arithmetic (also augmented assignment): ``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``*``,
  ``%`` -> ``*``
* boolean: ``and`` <-> ``or``; ``not x`` -> ``x``; ``-x`` -> ``x``
* constants: an integer ``n`` -> ``n + 1``, a float ``x`` -> ``x + 1.0``, ``True`` <-> ``False``

Strings are not mutated (log and reason texts would make mostly equivalent mutants), nor are
type annotations or decorators. Each site gives one mutant; the order is the AST walk's, so a
mutant's index is stable for an unchanged source.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass

COMPARE_FLIPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
BINOP_FLIPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.Mult,
}
SYMBOL: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.And: "and",
    ast.Or: "or",
}


@dataclass(frozen=True)
class Mutant:
    index: int
    line: int
    description: str
    source: str


@dataclass(frozen=True)
class _Site:
    line: int
    description: str


class _Mutator(ast.NodeTransformer):
    """Counts mutation sites in walk order; mutates only site ``target`` (-1: none)."""

    def __init__(self, target: int = -1) -> None:
        self.target = target
        self.sites: list[_Site] = []

    def _site(self, node: ast.AST, description: str) -> bool:
        self.sites.append(_Site(getattr(node, "lineno", 0), description))
        return len(self.sites) - 1 == self.target

    # -- not mutated: annotations, decorators, docstrings --------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        # Defaults are behaviour; annotations and decorators are not mutated.
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [
            self.visit(d) if d is not None else None for d in node.args.kw_defaults
        ]
        node.body = [self.visit(s) for s in node.body]
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = [self.visit(s) for s in node.body]
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        # Literal[1], Annotated[...] in a type alias are types, not values.
        if isinstance(node.value, ast.Name) and node.value.id in {"Literal", "Annotated"}:
            return node
        return self.generic_visit(node)

    # -- mutated -----------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            flip = COMPARE_FLIPS.get(type(op))
            if flip is not None and self._site(node, f"{SYMBOL[type(op)]} -> {SYMBOL[flip]}"):
                node.ops[i] = flip()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        flip = BINOP_FLIPS.get(type(node.op))
        if flip is not None and self._site(node, f"{SYMBOL[type(node.op)]} -> {SYMBOL[flip]}"):
            node.op = flip()
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        flip = BINOP_FLIPS.get(type(node.op))
        if flip is not None and self._site(node, f"{SYMBOL[type(node.op)]}= -> {SYMBOL[flip]}="):
            node.op = flip()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        flip: type[ast.boolop] = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, f"{SYMBOL[type(node.op)]} -> {SYMBOL[flip]}"):
            node.op = flip()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        if isinstance(node.op, ast.USub) and self._site(node, "-x -> x"):
            return node.operand
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        v = node.value
        if isinstance(v, bool):
            if self._site(node, f"{v} -> {not v}"):
                return ast.copy_location(ast.Constant(not v), node)
        elif isinstance(v, int):
            if self._site(node, f"{v} -> {v + 1}"):
                return ast.copy_location(ast.Constant(v + 1), node)
        elif isinstance(v, float) and self._site(node, f"{v} -> {v + 1.0}"):
            return ast.copy_location(ast.Constant(v + 1.0), node)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return node  # a docstring
        return self.generic_visit(node)


def sites_of(source: str) -> list[tuple[int, str]]:
    m = _Mutator()
    m.visit(ast.parse(source))
    return [(s.line, s.description) for s in m.sites]


def mutants_of(source: str) -> list[Mutant]:
    """Every single-site mutant of ``source``, as complete module sources."""
    tree = ast.parse(source)
    return list(_mutants(tree, len(sites_of(source))))


def _mutants(tree: ast.Module, count: int) -> Iterator[Mutant]:
    for i in range(count):
        m = _Mutator(target=i)
        mutated = m.visit(copy.deepcopy(tree))
        ast.fix_missing_locations(mutated)
        site = m.sites[i]
        yield Mutant(i, site.line, site.description, ast.unparse(mutated))
