"""Settings from the environment, validated once at start-up.

Every knob is a ``DISPATCHER_*`` variable. Defaults live here, in one place. Unset broker and
database mean "start the embedded ones" (``dispatcher up``); a worker needs both set.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from dispatcher.errors import ConfigError

ENV_PREFIX = "DISPATCHER_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset -> embedded Tansu broker."
    )
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL DSN; unset -> embedded pgserver."
    )
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    api_port: int = Field(default=6080, ge=0, le=65535, description="HTTP API (dispatcher api).")
    app_id: str = "acute-dispatcher"
    partitions: int = Field(default=8, ge=1, le=1024)
    replication: int = Field(default=1, ge=1)
    # faust's first group join waits this long; keep it low in dev/tests.
    rebalance_timeout_s: float = Field(default=3.0, gt=0)
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=5000,
        description="How long the consumer lets the broker hold a fetch (faust fixes 1500).",
    )
    batch_max: int = Field(default=500, ge=1)
    batch_within_s: float = Field(default=0.02, gt=0)
    outbox_sweep_s: float = Field(default=2.0, gt=0)
    deadline_scan_s: float = Field(default=1.0, gt=0, description="Ack-deadline scan period.")
    case_stats_s: float = Field(default=10.0, gt=0)
    webhook_poll_s: float = Field(default=0.5, gt=0, description="Due-delivery poll period.")
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="One webhook POST.")
    sensor_silence_scan_s: float = Field(default=60.0, gt=0, description="Silent-sensor scan.")
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str = Field(default=".dispatcher", description="Embedded stack state.")
    # --- worker internals (were constants in the modules that use them) -------------------
    lag_metrics_s: float = Field(default=5.0, gt=0, description="Lag/outbox gauge refresh.")
    outbox_sweep_min_age_s: float = Field(
        default=2.0,
        ge=0,
        description="The sweep re-sends outbox rows at least this old (younger ones are still "
        "being relayed by the batch that wrote them).",
    )
    worker_pool_min: int = Field(default=1, ge=1, description="Worker PostgreSQL pool, minimum.")
    worker_pool_max: int = Field(default=5, ge=1, description="Worker PostgreSQL pool, maximum.")
    roster_ttl_s: float = Field(
        default=5.0, ge=0, description="How long the case manager trusts its cached roster."
    )
    delivery_max_in_flight: int = Field(
        default=16, ge=1, description="Concurrent webhook POSTs per worker."
    )
    delivery_batch: int = Field(default=50, ge=1, description="Due deliveries leased per poll.")
    health_probe_s: float = Field(
        default=2.0, gt=0, description="How often /healthz's database and broker probes run."
    )
    health_stale_after_s: float = Field(
        default=15.0,
        gt=0,
        description="/healthz turns 503 when the database or the broker has not answered a "
        "probe for this long (a frozen PostgreSQL must not look healthy).",
    )
    # --- demo traffic (dispatcher-traffic) --------------------------------------------------
    traffic_rate: float = Field(default=5.0, gt=0, description="Demo messages per second.")
    traffic_seed: int = Field(default=7, description="Seed of the demo traffic.")
    # --- HTTP API process (dispatcher api) ------------------------------------------------
    api_pool_min: int = Field(default=1, ge=1, description="API PostgreSQL pool, minimum.")
    api_pool_max: int = Field(default=10, ge=1, description="API PostgreSQL pool, maximum.")
    # --- what an acknowledgement covers (docs/cases.md) ------------------------------------
    ack_quiet_period_min: float = Field(
        default=60.0,
        gt=0,
        description="A rule already on an acknowledged case re-notifies its assignee (an "
        "'update' page) when it fires again after this many minutes without firing on the case.",
    )
    ack_stale_after_h: float = Field(
        default=12.0,
        gt=0,
        description="An acknowledged case unresolved this many hours after its acknowledgement "
        "asks its team to resolve or renew it; from then on a new finding opens a new case.",
    )
    burst_window_min: float = Field(
        default=5.0,
        gt=0,
        description="Firings of one rule within this many minutes of the first of their burst "
        "are counted as one burst on the case ('3 x sensor.fall within 2 min').",
    )
    # --- TEST-ONLY fault injection (tests/integration/test_reliability.py) ----------------
    fault_exit_after_outbox_send: bool = Field(
        default=False,
        description="TEST ONLY, never in production: the worker exits at once "
        "(os._exit(store.batches.FAULT_EXIT_CODE)) after the outbox relay has sent rows to "
        "Kafka and before it marks them published - the at-least-once duplicate window, met "
        "for real by the fault tests.",
    )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigError(f"invalid settings: {problems}") from None

    def dsn(self) -> str:
        if self.database_url is None:
            raise ConfigError("DISPATCHER_DATABASE_URL is not set")
        return self.database_url.get_secret_value()

    def bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise ConfigError("DISPATCHER_KAFKA_BOOTSTRAP is not set")
        return self.kafka_bootstrap

    def to_env(self) -> dict[str, str]:
        """The same settings as environment variables, for a child worker process."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            out[ENV_PREFIX + name.upper()] = str(value)
        return out
