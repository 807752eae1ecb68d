"""Metrics (Prometheus, injected registry) and logs (structlog, CPR and free-text redaction)."""
