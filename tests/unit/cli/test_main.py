"""The ``dispatcher`` command reports configuration errors as one line, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from dispatcher.cli.main import main


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A command configures logging onto pytest's captured stderr, which is closed after the
    test: put structlog and the stdlib root logger back so later tests can still log."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


class TestConfigErrors:
    def test_a_missing_database_url_is_one_line_and_exit_2(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`dispatcher tokens create` without DISPATCHER_DATABASE_URL names the variable."""
        monkeypatch.delenv("DISPATCHER_DATABASE_URL", raising=False)
        assert main(["tokens", "create", "--actor", "rn-01", "--team", "t-1"]) == 2
        err = capsys.readouterr().err
        assert err == "dispatcher tokens: DISPATCHER_DATABASE_URL is not set\n"

    def test_an_invalid_setting_names_its_variable_and_the_reason(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An out-of-range DISPATCHER_PARTITIONS stops `migrate` with the variable and why."""
        monkeypatch.setenv("DISPATCHER_PARTITIONS", "0")
        assert main(["migrate"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1
        assert err[0].startswith("dispatcher migrate: invalid settings: DISPATCHER_PARTITIONS:")
        assert "greater than or equal to 1" in err[0]
