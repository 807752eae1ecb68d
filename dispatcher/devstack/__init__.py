"""The embedded development stack (Tansu broker, pgserver PostgreSQL, child processes) and demo
traffic. Only the CLI imports this package: production never runs it."""
