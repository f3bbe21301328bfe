-- Outbound replies (docs/outbound.md): agents' messages leave through an outbox written in the same
-- transaction as the message, so nothing acknowledged to an agent is lost by a crash.

ALTER TABLE channels ADD COLUMN outbound_url TEXT;

-- Delivery state of a message an agent sent on a channel. ``webhook_id`` is the Standard Webhooks
-- id every attempt carries (the provider deduplicates on it); ``provider_id`` is the provider's own
-- id (of an incoming message, or the one its 2xx gave an outgoing one), for status callbacks.
ALTER TABLE messages ADD COLUMN webhook_id TEXT;
ALTER TABLE messages ADD COLUMN provider_id TEXT;
ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_code INTEGER;
ALTER TABLE messages ADD COLUMN last_error TEXT;
CREATE INDEX messages_provider ON messages(provider_id) WHERE provider_id IS NOT NULL;

-- What is still to be sent. A row leaves when its item is sent or has failed for good; a retry of a
-- failed item adds a new row with the same webhook id.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('chat', 'email')),
    target_id   INTEGER NOT NULL,        -- the channel (chat) or the inbox (email)
    item_id     INTEGER NOT NULL,        -- the message or the email
    lane        INTEGER NOT NULL,        -- its conversation or thread: one attempt in flight per lane keeps order
    webhook_id  TEXT NOT NULL,
    queued_at   REAL NOT NULL,           -- retries stop INBOX_OUTBOUND_GIVE_UP_SECONDS after this
    due_at      REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox(due_at);
CREATE UNIQUE INDEX outbox_item ON outbox(kind, item_id);
CREATE INDEX outbox_lane ON outbox(kind, lane, id);

-- A target (channel or inbox) whose deliveries keep failing is paused until an admin resumes it.
CREATE TABLE outbound_targets (
    kind        TEXT NOT NULL,
    target_id   INTEGER NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts
    paused_at   REAL,
    last_error  TEXT,
    PRIMARY KEY (kind, target_id)
) WITHOUT ROWID;

-- Notifications about something other than a lead (a paused channel) have no lead.
CREATE TABLE notifications_new (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    lead_id     INTEGER,                              -- no FK: a deleted lead's notice stays readable
    type        TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL,
    read_at     REAL
);
INSERT INTO notifications_new (id, user_id, lead_id, type, data, created_at, read_at)
    SELECT id, user_id, lead_id, type, data, created_at, read_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_user ON notifications(user_id, id);
