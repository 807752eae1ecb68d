-- 0001: audit log (one row per accepted event id), citizen context, escalations,
-- dead letters and the transactional outbox.

CREATE TABLE audit_log (
    event_id      uuid PRIMARY KEY,
    audit_seq     bigserial   NOT NULL,  -- commit order, to check per-citizen ordering
    citizen_id    text        NOT NULL,
    event_kind    text        NOT NULL,
    source_topic  text        NOT NULL,
    source_partition integer  NOT NULL,
    source_offset bigint      NOT NULL,
    occurred_at   timestamptz NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('escalated', 'assessed', 'context_updated')),
    severity      text        NOT NULL,
    assessment    jsonb       NOT NULL,
    payload       jsonb       NOT NULL,
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_citizen_idx ON audit_log (citizen_id, occurred_at);

CREATE TABLE citizen_context (
    citizen_id  text PRIMARY KEY,
    context     jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE escalations (
    escalation_id uuid PRIMARY KEY,
    case_id       uuid        NOT NULL,
    citizen_id    text        NOT NULL,
    severity      text        NOT NULL,
    route_tier    text        NOT NULL,
    route_team    text        NOT NULL,
    payload       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX escalations_citizen_idx ON escalations (citizen_id, created_at);

CREATE TABLE dead_letters (
    dead_letter_id uuid PRIMARY KEY,
    source_topic   text        NOT NULL,
    source_partition integer   NOT NULL,
    source_offset  bigint      NOT NULL,
    event_id       uuid,
    error_field    text        NOT NULL,
    error_reason   text        NOT NULL,
    errors         jsonb       NOT NULL,
    original       bytea       NOT NULL,
    rejected_at    timestamptz NOT NULL
);

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
