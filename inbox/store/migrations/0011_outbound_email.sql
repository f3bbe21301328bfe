-- Replies from shared inboxes go out by SMTP through the outbox (docs/outbound.md).

-- Outgoing settings of an inbox; the password is sealed like every other secret and never returned.
ALTER TABLE inboxes ADD COLUMN address TEXT;
ALTER TABLE inboxes ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE inboxes ADD COLUMN smtp_host TEXT;
ALTER TABLE inboxes ADD COLUMN smtp_port INTEGER;
ALTER TABLE inboxes ADD COLUMN smtp_security TEXT;
ALTER TABLE inboxes ADD COLUMN smtp_username TEXT;
ALTER TABLE inboxes ADD COLUMN smtp_password_sealed TEXT;

-- An email the inbox sent (direction 'outgoing') and how its sending went; incoming ones keep the
-- defaults. ``author_user_id`` is the agent who wrote it.
ALTER TABLE emails ADD COLUMN direction TEXT NOT NULL DEFAULT 'incoming';
ALTER TABLE emails ADD COLUMN author_user_id INTEGER;
ALTER TABLE emails ADD COLUMN cc_addrs TEXT NOT NULL DEFAULT '[]';
ALTER TABLE emails ADD COLUMN status TEXT;
ALTER TABLE emails ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE emails ADD COLUMN last_code INTEGER;
ALTER TABLE emails ADD COLUMN last_error TEXT;
