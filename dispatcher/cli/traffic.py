"""``dispatcher-traffic``: publish seeded demo traffic to a broker until SIGTERM or SIGINT.

Used by the docker-compose ``demo`` service. Settings come from the environment:
``DISPATCHER_KAFKA_BOOTSTRAP`` (required), ``DISPATCHER_TRAFFIC_RATE`` (messages per second,
default 5) and ``DISPATCHER_TRAFFIC_SEED`` (default 7). All ids in the traffic are pseudonymous.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType

from kafka.errors import KafkaError

from dispatcher.config import Settings
from dispatcher.devstack.demo import run_traffic
from dispatcher.observability.logging import configure_logging

RETRY_DELAY_S = 3.0


def traffic_options(environ: Mapping[str, str]) -> tuple[float, int]:
    """(rate, seed) from the environment, validated by ``Settings`` (a rate must be positive)."""
    settings = Settings.from_env(dict(environ))
    return settings.traffic_rate, settings.traffic_seed


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    rate, seed = settings.traffic_rate, settings.traffic_seed
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    bootstrap = settings.bootstrap()
    sent = 0
    while not stop.is_set():
        try:
            sent += run_traffic(bootstrap, rate, stop, seed)
        except KafkaError as exc:  # broker not up yet, or restarted: wait and go on
            print(f"traffic: broker unavailable ({type(exc).__name__}); retrying", file=sys.stderr)
            stop.wait(RETRY_DELAY_S)
    print(f"traffic: stopped after {sent} messages at {time.strftime('%H:%M:%S')}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
