"""Pure clinical core: scoring, citizen context and escalation rules.

Nothing here does I/O or reads the clock: time is passed in, so every decision is deterministic
and unit-testable. This package imports only ``dispatcher.events`` and the standard library
(and pydantic, through the event models); ``tests/unit/test_layering.py`` enforces it.
"""
