-- Real time: conversations and messages, the event log every websocket reads from, and media rows.

-- Files are stored content-addressed on disk (issue 6); a message refers to them by id.
CREATE TABLE media (
    id           INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL,
    type         TEXT NOT NULL,                       -- sniffed MIME type
    name         TEXT NOT NULL DEFAULT '',
    size         INTEGER NOT NULL,
    created_by   INTEGER,
    created_at   REAL NOT NULL
);

CREATE TABLE conversations (
    id           INTEGER PRIMARY KEY,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    lead_id      INTEGER REFERENCES leads(id) ON DELETE SET NULL,
    channel      TEXT NOT NULL DEFAULT 'internal',
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL
);
CREATE INDEX conversations_lead ON conversations(lead_id);
CREATE INDEX conversations_contact ON conversations(contact_id);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_type     TEXT NOT NULL CHECK (author_type IN ('agent', 'contact')),
    author_user_id  INTEGER,
    text            TEXT NOT NULL DEFAULT '',
    attachments     TEXT NOT NULL DEFAULT '[]',       -- [{"media_id", "type", "name", "size"}]
    status          TEXT NOT NULL DEFAULT 'sent',
    created_at      REAL NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);

CREATE TABLE conversation_reads (
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    last_read_id     INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;

-- Every message, record change, notification and access change, in commit order. AUTOINCREMENT: an
-- id is never reused, even after pruning, so a client's cursor always means the same point.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               REAL NOT NULL,
    type             TEXT NOT NULL,
    data             TEXT NOT NULL                    -- the unredacted payload; redacted per reader
);
