-- 0004: the outbox relay isolates failures per message (issue 11 item 1). A row the broker or
-- the producer refuses for good (too large, any non-retriable produce error) is parked with its
-- reason instead of being retried forever in front of the rows behind it; an operator sees it
-- (metric dispatcher_outbox_parked_total, alert DispatcherOutboxMessageParked) and decides.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz;
ALTER TABLE outbox ADD COLUMN park_reason text;

-- What the relay still has to send: neither published nor parked.
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked_idx ON outbox (parked_at) WHERE parked_at IS NOT NULL;
