"""Topic names and their creation.

All input topics are keyed by ``citizen_id`` and have the same partition count, so faust
co-partitions them: one worker owns every event of a citizen, in order.
"""

from __future__ import annotations

import contextlib
import time

import structlog

DISCHARGES = "hospital.discharges"
SENSOR_READINGS = "home.sensor-readings"
NURSE_OBSERVATIONS = "homecare.nurse-observations"
ESCALATIONS = "acute.escalations"
DEAD_LETTER = "dispatcher.dead-letter"

INPUT_TOPICS: tuple[str, ...] = (DISCHARGES, SENSOR_READINGS, NURSE_OBSERVATIONS)
OUTPUT_TOPICS: tuple[str, ...] = (ESCALATIONS, DEAD_LETTER)
ALL_TOPICS: tuple[str, ...] = INPUT_TOPICS + OUTPUT_TOPICS

log = structlog.get_logger(__name__)


def ensure_topics(
    bootstrap: str,
    partitions: int,
    replication: int = 1,
    timeout_s: float = 30.0,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """Create any missing topic (ours plus ``extra``, e.g. the teams' page topics); return the
    ones created. Existing topics are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dispatcher-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in (*ALL_TOPICS, *extra) if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                admin.create_topics(
                    [NewTopic(t, partitions, replication) for t in missing],
                    validate_only=False,
                )
            log.info("topics_created", topics=missing, partitions=partitions)
        return missing
    finally:
        admin.close()
