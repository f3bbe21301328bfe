-- The conversation workflow (docs/outbound.md): an assignee and a status on chat conversations and
-- email threads. A customer's message reopens a resolved one.

ALTER TABLE conversations ADD COLUMN assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE conversations ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
CREATE INDEX conversations_assignee ON conversations(assignee_id, id);

ALTER TABLE email_threads ADD COLUMN assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE email_threads ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
CREATE INDEX email_threads_assignee ON email_threads(inbox_id, assignee_id, id);

-- Unread counts: a read mark remembers the newest email it covered, and an arriving email no longer
-- removes the mark (it only makes the thread unread by being newer). Marks made before covered all.
ALTER TABLE email_thread_reads ADD COLUMN last_email_id INTEGER;
UPDATE email_thread_reads SET last_email_id = (SELECT last_email_id FROM email_threads WHERE id = thread_id);
