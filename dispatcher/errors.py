"""The one exception tree: every error the dispatcher raises on purpose is a ``DispatcherError``.

Two branches say what a caller can do about it:

* ``RetryableError``: the same call may succeed later (a store or broker outage). Shells retry
  these with ``dispatcher.store.retry.RetryPolicy``; the store's own transient driver errors are
  listed in ``dispatcher.store.retry.TRANSIENT_ERRORS``.
* ``PermanentError``: retrying cannot help (bad configuration, an invalid rule set or roster, a
  transition the case state forbids, a forged signature). Input errors go to the dead-letter topic
  with a ``DeadLetterCategory``; request errors become a 4xx.

Each package keeps its specific errors beside the code that raises them (``RuleSetError`` in
``rules/ruleset.py``, ``RosterError`` in ``routing/roster.py``...), all under these bases. Where a
caller used to catch ``ValueError`` the subclass keeps that working (faststream's pattern).
This module imports nothing, so the pure core may use it.
"""

from __future__ import annotations


class DispatcherError(Exception):
    """Root of every error the dispatcher raises on purpose."""


class RetryableError(DispatcherError):
    """A transient failure: the same operation may succeed if tried again later."""


class PermanentError(DispatcherError):
    """A failure that retrying cannot fix: the input, configuration or request is wrong."""


class ConfigError(PermanentError, ValueError):
    """A setting is missing or invalid (named, with the environment variable to set)."""
