"""One vocabulary: the database schema and every SQL statement agree with contract/vocab.py.

A state, severity or tier spelt as a string literal inside SQL is a second definition that a
rename would miss, so queries take vocabulary values as parameters; the migrations' CHECK lists
and partial-index predicates must equal the vocabulary exactly.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest

from dispatcher.contract import vocab

PKG = Path(__file__).resolve().parents[3] / "dispatcher"
MIGRATIONS = PKG / "store" / "migrations"
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES)\b")
QUOTED = re.compile(r"'([a-z_-]+)'")

VOCABULARY: dict[str, frozenset[str]] = {
    "case state": frozenset(s.value for s in vocab.CaseState),
    "severity": frozenset(vocab.SEVERITIES),
    "tier": frozenset(vocab.TIERS),
    "risk band": frozenset(vocab.RISK_BANDS),
    "outcome": frozenset(vocab.OUTCOMES),
    "role": frozenset(get_args(vocab.Role)),
    "delivery state": frozenset(s.value for s in vocab.DeliveryState),
    "attempt outcome": frozenset(get_args(vocab.AttemptOutcome)),
    "audit outcome": frozenset(get_args(vocab.AuditOutcome)),
    "channel": frozenset(get_args(vocab.Channel)),
}
WORDS = frozenset().union(*VOCABULARY.values())


def check_constraints() -> dict[tuple[str, str], frozenset[str]]:
    """(table, column) -> the values of its ``CHECK (column IN (...))`` in the migrations."""
    found: dict[tuple[str, str], frozenset[str]] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", path.read_text(), re.S):
            for column, values in re.findall(r"CHECK \((\w+) IN\s*\(([^)]*)\)\)", body):
                found[(table, column)] = frozenset(re.findall(r"'([^']*)'", values))
    return found


def stray_literals(source: str) -> list[str]:
    """Vocabulary words quoted inside SQL-looking string constants of one module's source."""
    offences: list[str] = []
    for node in ast.walk(ast.parse(source)):
        is_sql = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_sql and SQL_WORDS.search(node.value):
            offences += [
                f"line {node.lineno}: '{w}'" for w in QUOTED.findall(node.value) if w in WORDS
            ]
    return offences


class TestSchemaMatchesVocabulary:
    @pytest.mark.parametrize(
        ("table", "column", "kind"),
        [
            ("cases", "state", "case state"),
            ("cases", "outcome", "outcome"),
            ("roster_teams", "tier", "tier"),
            ("deliveries", "state", "delivery state"),
            ("deliveries", "channel", "channel"),
            ("delivery_attempts", "outcome", "attempt outcome"),
            ("api_tokens", "role", "role"),
            ("audit_log", "outcome", "audit outcome"),
        ],
    )
    def test_check_constraint_lists_exactly_the_vocabulary(
        self, table: str, column: str, kind: str
    ) -> None:
        """Each CHECK (column IN (...)) of the schema allows exactly the vocabulary's values."""
        assert check_constraints()[(table, column)] == VOCABULARY[kind]

    def test_deadline_index_covers_exactly_the_states_awaiting_an_ack(self) -> None:
        """The partial index the deadline scan uses names exactly ``AWAITING_ACK``."""
        text = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
        predicate = re.search(r"ON cases \(ack_deadline\)\s*WHERE state IN \(([^)]*)\)", text)
        assert predicate is not None
        assert frozenset(re.findall(r"'([^']*)'", predicate.group(1))) == {
            s.value for s in vocab.AWAITING_ACK
        }


class TestNoStrayLiterals:
    def test_no_sql_statement_spells_a_vocabulary_word(self) -> None:
        """No SQL string under dispatcher/ quotes a state, severity, tier or other vocabulary
        word: queries pass them as parameters taken from contract/vocab.py."""
        offences = {
            str(path.relative_to(PKG)): found
            for path in sorted(PKG.rglob("*.py"))
            if path != PKG / "contract" / "vocab.py"
            for found in [stray_literals(path.read_text())]
            if found
        }
        assert offences == {}

    def test_the_check_finds_an_injected_literal(self) -> None:
        """The checker is not vacuous: a quoted state inside SQL is reported with its line."""
        source = 'Q = "SELECT case_id FROM cases WHERE state = \'resolved\'"\nX = "resolved"\n'
        assert stray_literals(source) == ["line 1: 'resolved'"]

    def test_the_schema_parser_reads_the_checks_it_compares(self) -> None:
        """The CHECK parser sees every constrained column the comparison relies on."""
        assert {("cases", "state"), ("api_tokens", "role")} <= set(check_constraints())
