-- Shared inboxes and inbound email (SPEC sections 5 and rule 8).

CREATE TABLE inboxes (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    secret_sealed    TEXT NOT NULL,
    previous_sealed  TEXT,
    previous_until   REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);

CREATE TABLE inbox_members (
    inbox_id   INTEGER NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (inbox_id, user_id)
) WITHOUT ROWID;
CREATE INDEX inbox_members_user ON inbox_members(user_id, inbox_id);

CREATE TABLE email_threads (
    id          INTEGER PRIMARY KEY,
    inbox_id    INTEGER NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    subject     TEXT NOT NULL DEFAULT '',
    contact_id  INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    lead_id     INTEGER REFERENCES leads(id) ON DELETE SET NULL,
    last_email_id INTEGER,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX email_threads_inbox ON email_threads(inbox_id, id);

CREATE TABLE emails (
    id           INTEGER PRIMARY KEY,
    inbox_id     INTEGER NOT NULL REFERENCES inboxes(id) ON DELETE CASCADE,
    thread_id    INTEGER NOT NULL REFERENCES email_threads(id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    in_reply_to  TEXT,
    refs         TEXT NOT NULL DEFAULT '[]',
    subject      TEXT NOT NULL DEFAULT '',
    from_addr    TEXT NOT NULL,
    from_name    TEXT NOT NULL DEFAULT '',
    to_addrs     TEXT NOT NULL DEFAULT '[]',
    sent_at      REAL,
    text         TEXT NOT NULL DEFAULT '',
    html         TEXT NOT NULL DEFAULT '',
    attachments  TEXT NOT NULL DEFAULT '[]',
    contact_id   INTEGER REFERENCES contacts(id) ON DELETE SET NULL,
    lead_id      INTEGER REFERENCES leads(id) ON DELETE SET NULL,
    created_at   REAL NOT NULL
);
CREATE UNIQUE INDEX emails_message ON emails(inbox_id, message_id);
CREATE INDEX emails_thread ON emails(thread_id, id);
CREATE INDEX emails_lead ON emails(lead_id, id);

CREATE TABLE email_thread_reads (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    thread_id  INTEGER NOT NULL REFERENCES email_threads(id) ON DELETE CASCADE,
    read_at    REAL NOT NULL,
    PRIMARY KEY (user_id, thread_id)
) WITHOUT ROWID;
