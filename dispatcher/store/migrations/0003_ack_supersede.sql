-- 0003: acknowledgement covers what was acknowledged (docs/cases.md). An acknowledged case left
-- unresolved past DISPATCHER_ACK_STALE_AFTER_H no longer takes the citizen's new findings: the
-- next one opens a new case, and the stale case records which case superseded it. It stays
-- unresolved (its team still resolves it) but is no longer the citizen's current case.

-- Deferred: the stale case is marked before its successor is inserted, in one transaction (the
-- one-current-case index below must never see two).
ALTER TABLE cases ADD COLUMN superseded_by uuid
    REFERENCES cases (case_id) DEFERRABLE INITIALLY DEFERRED;

-- One current case per citizen: further escalations group into it; a superseded one is not it.
DROP INDEX cases_one_open_per_citizen;
CREATE UNIQUE INDEX cases_one_open_per_citizen ON cases (citizen_id)
    WHERE state <> 'resolved' AND superseded_by IS NULL;

-- The stale-acknowledgement scan (cases.manager.scan_deadlines), oldest acknowledgement first.
CREATE INDEX cases_ack_stale_idx ON cases (acknowledged_at)
    WHERE state = 'acknowledged' AND superseded_by IS NULL;
