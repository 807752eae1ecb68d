"""A small mutation tester for the pure core (``make mutation``); see docs/testing.md."""
