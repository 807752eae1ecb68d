"""Topic administration: create what is missing, leave what exists."""

from __future__ import annotations

import contextlib
import time

import structlog

from dispatcher.contract.topics import ALL_TOPICS

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
