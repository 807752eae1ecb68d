-- 0002: roster (teams, staff with shifts), cases with their history, silences, push deliveries
-- with per-attempt status, and API tokens.

CREATE TABLE roster_teams (
    team_id    text PRIMARY KEY,
    tier       text        NOT NULL CHECK (tier IN ('nurse', 'doctor', 'palliative')),
    doc        jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roster_meta (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    doctor_team text        NOT NULL,
    version     bigint      NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roster_staff (
    staff_id   text PRIMARY KEY,
    team_id    text        NOT NULL REFERENCES roster_teams (team_id) ON DELETE CASCADE,
    doc        jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cases (
    case_id          uuid PRIMARY KEY,
    citizen_id       text        NOT NULL,
    state            text        NOT NULL CHECK (state IN
                        ('open', 'notified', 'acknowledged', 're_escalated', 'resolved')),
    severity         text        NOT NULL,
    tier             text        NOT NULL,
    team_id          text        NOT NULL,
    staff_id         text,
    level            integer     NOT NULL DEFAULT 0,
    chain            jsonb       NOT NULL,
    ack_minutes      integer     NOT NULL,
    ack_deadline     timestamptz NOT NULL,
    opened_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text,
    outcome          text CHECK (outcome IN ('treated_at_home', 'admitted', 'false_alarm', 'other')),
    detail           jsonb       NOT NULL,
    ack_observed_at  timestamptz  -- set once the acknowledgement time went into the metrics
);
CREATE INDEX cases_ack_unobserved_idx ON cases (acknowledged_at)
    WHERE acknowledged_at IS NOT NULL AND ack_observed_at IS NULL;
-- One open case per citizen: further escalations group into it.
CREATE UNIQUE INDEX cases_one_open_per_citizen ON cases (citizen_id) WHERE state <> 'resolved';
CREATE INDEX cases_deadline_idx ON cases (ack_deadline)
    WHERE state IN ('open', 'notified', 're_escalated');
CREATE INDEX cases_team_idx ON cases (team_id, state);

CREATE TABLE case_escalations (
    escalation_id uuid PRIMARY KEY,
    case_id       uuid REFERENCES cases (case_id),  -- NULL when a silence suppressed it
    citizen_id    text        NOT NULL,
    action        text        NOT NULL,
    silence_id    uuid,
    received_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE case_events (
    id       bigserial PRIMARY KEY,
    case_id  uuid        NOT NULL REFERENCES cases (case_id),
    at       timestamptz NOT NULL,
    actor    text        NOT NULL,
    action   text        NOT NULL,
    detail   jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX case_events_case_idx ON case_events (case_id, id);

CREATE TABLE silences (
    silence_id  uuid PRIMARY KEY,
    citizen_id  text        NOT NULL,
    rule_id     text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    author      text        NOT NULL,
    reason      text        NOT NULL,
    include_critical boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz
);
CREATE INDEX silences_citizen_idx ON silences (citizen_id, ends_at);

CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    case_id         uuid        NOT NULL REFERENCES cases (case_id),
    page_seq        integer     NOT NULL,
    team_id         text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('webhook')),
    url             text        NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    payload         bytea       NOT NULL,
    state           text        NOT NULL CHECK (state IN
                        ('pending', 'delivered', 'undeliverable', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    deadline_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    last_error      text
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_case_idx ON deliveries (case_id);

CREATE TABLE delivery_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES deliveries (delivery_id),
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  integer     NOT NULL,
    status_code  integer,
    error        text,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'gave_up'))
);
CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id, attempt);

CREATE TABLE api_tokens (
    token_sha256 text PRIMARY KEY,
    actor        text        NOT NULL,
    team_id      text,
    role         text        NOT NULL CHECK (role IN ('member', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
