"""Pure clinical core: scoring, citizen context and escalation rules.

Nothing here does I/O or reads the clock: time is passed in, so every decision is deterministic
and unit-testable. This package imports only ``dispatcher.contract``, its own modules,
pydantic, yaml (rule sets) and the standard library; ``tests/unit/test_layering.py`` enforces it.

Entry points: ``assessment.evaluate`` (any event -> assessment + updated context),
``assessment.silent_sensor_check`` (timer), ``ruleset.default_ruleset`` / ``load_ruleset`` /
``parse_ruleset`` (YAML rule sets, thresholds as data).
"""
