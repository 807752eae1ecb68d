"""Ingestion: raw Kafka bytes -> decoded events -> a pure batch plan -> one durable write.

``decoding`` and ``planner`` are pure; ``processor`` is the I/O shell (retries, poison isolation,
outbox relay, the silent-sensor scan).
"""
