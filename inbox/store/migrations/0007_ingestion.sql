-- Chat channels and their webhooks, media links (SPEC sections 5 and 6).

CREATE TABLE channels (
    id                     INTEGER PRIMARY KEY,
    name                   TEXT NOT NULL,
    pipeline_id            INTEGER NOT NULL REFERENCES pipelines(id),
    responsible_user_id    INTEGER NOT NULL REFERENCES users(id),  -- owner of contacts and leads it creates
    secret_sealed          TEXT NOT NULL,
    previous_sealed        TEXT,                                   -- still accepted until previous_until
    previous_until         REAL,
    created_at             REAL NOT NULL,
    updated_at             REAL NOT NULL
);

-- Provider message ids already handled, with the answer given: a retry gets the same answer.
CREATE TABLE inbound_ids (
    channel_id     INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    provider_id    TEXT NOT NULL,
    result         TEXT NOT NULL,
    created_at     REAL NOT NULL,
    PRIMARY KEY (channel_id, provider_id)
) WITHOUT ROWID;

-- Who a sender is on a channel (a phone number, a user name), and which contact that is.
CREATE TABLE contact_handles (
    channel_id     INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    handle         TEXT NOT NULL,
    contact_id     INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (channel_id, handle)
) WITHOUT ROWID;

ALTER TABLE conversations ADD COLUMN channel_id INTEGER REFERENCES channels(id) ON DELETE SET NULL;
CREATE INDEX conversations_channel_contact ON conversations(channel_id, contact_id, id);

-- Where a file is used; a download is allowed through any place the reader may see.
CREATE TABLE media_links (
    media_id        INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    conversation_id INTEGER REFERENCES conversations(id) ON DELETE CASCADE,
    email_id        INTEGER
);
CREATE INDEX media_links_media ON media_links(media_id);
