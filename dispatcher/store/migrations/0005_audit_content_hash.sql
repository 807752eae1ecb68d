-- 0005: identity (issue 11 item 2). Each audit row keeps the SHA-256 of its event's content
-- (canonical JSON of the document as sent: ingest/planner.py content_sha256), so an event_id
-- seen again is an idempotent duplicate only when the content is the same; other content under
-- a taken id (another citizen, other values) is a dead letter "event_id reused with different
-- content". Rows audited before this migration have NULL: a repeat of them counts as a duplicate.
ALTER TABLE audit_log ADD COLUMN content_sha256 text;
