-- Workspace, people, rights, sessions and the activity log.
-- Times are UNIX seconds (REAL, UTC); the API renders them as RFC 3339.

CREATE TABLE workspace (
    id          INTEGER PRIMARY KEY CHECK (id = 1),   -- one workspace per deployment (SPEC 1)
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',           -- JSON: security settings and the like
    created_at  REAL NOT NULL
);

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    rights      TEXT NOT NULL,                        -- JSON rights object, stored clamped
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT NOT NULL,
    avatar        TEXT,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    is_active     INTEGER NOT NULL DEFAULT 1,
    is_partner    INTEGER NOT NULL DEFAULT 0,
    role_id       INTEGER REFERENCES roles(id) ON DELETE RESTRICT,
    rights        TEXT,                               -- own rights (JSON); used when role_id is NULL
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role_id     INTEGER REFERENCES roles(id) ON DELETE RESTRICT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

CREATE TABLE group_members (
    group_id    INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX group_members_user ON group_members(user_id, group_id);

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,               -- SHA-256 of the token; the token is never stored
    user_agent    TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    created_at    REAL NOT NULL,
    last_seen_at  REAL NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

-- Failed logins per account and per address, for throttling (SECURITY-CHECKLIST 10).
CREATE TABLE login_failures (
    key         TEXT NOT NULL,                        -- 'email:<lowercased>' or 'ip:<address>'
    at          REAL NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(key, at);

-- Append-only and hash-chained: hash = sha256(prev_hash || canonical row).
CREATE TABLE activity (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    actor_id     INTEGER,                             -- no FK: the log outlives removed users
    ip           TEXT NOT NULL DEFAULT '',
    type         TEXT NOT NULL,
    object_type  TEXT NOT NULL DEFAULT '',
    object_id    INTEGER,
    data         TEXT NOT NULL DEFAULT '{}',
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX activity_actor ON activity(actor_id, id);
CREATE INDEX activity_type ON activity(type, id);
CREATE INDEX activity_object ON activity(object_type, object_id, id);
CREATE TRIGGER activity_no_update BEFORE UPDATE ON activity
BEGIN SELECT RAISE(ABORT, 'activity log is append-only'); END;
CREATE TRIGGER activity_no_delete BEFORE DELETE ON activity
BEGIN SELECT RAISE(ABORT, 'activity log is append-only'); END;

-- CRM records: the columns the foundation needs (ownership, for reassignment on user removal).
-- The permission-core migration extends them.
CREATE TABLE pipelines (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    sort        INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL
);

CREATE TABLE stages (
    id          INTEGER PRIMARY KEY,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    sort        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stages_pipeline ON stages(pipeline_id, sort);

CREATE TABLE companies (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL,
    responsible_user_id  INTEGER NOT NULL REFERENCES users(id),
    custom               TEXT NOT NULL DEFAULT '{}',
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL
);
CREATE INDEX companies_responsible ON companies(responsible_user_id, id);

CREATE TABLE contacts (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL,
    avatar               TEXT,
    emails               TEXT NOT NULL DEFAULT '[]',
    phones               TEXT NOT NULL DEFAULT '[]',
    company_id           INTEGER REFERENCES companies(id) ON DELETE SET NULL,
    responsible_user_id  INTEGER NOT NULL REFERENCES users(id),
    custom               TEXT NOT NULL DEFAULT '{}',
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL
);
CREATE INDEX contacts_responsible ON contacts(responsible_user_id, id);

CREATE TABLE leads (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL,
    price                INTEGER NOT NULL DEFAULT 0,
    pipeline_id          INTEGER NOT NULL REFERENCES pipelines(id),
    stage_id             INTEGER NOT NULL REFERENCES stages(id),
    responsible_user_id  INTEGER NOT NULL REFERENCES users(id),
    company_id           INTEGER REFERENCES companies(id) ON DELETE SET NULL,
    custom               TEXT NOT NULL DEFAULT '{}',
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL
);
CREATE INDEX leads_responsible ON leads(responsible_user_id, id);
CREATE INDEX leads_stage ON leads(stage_id, responsible_user_id, id);

CREATE TABLE tasks (
    id                   INTEGER PRIMARY KEY,
    text                 TEXT NOT NULL,
    due_at               REAL,
    responsible_user_id  INTEGER NOT NULL REFERENCES users(id),
    entity_type          TEXT CHECK (entity_type IN ('leads', 'contacts', 'companies')),
    entity_id            INTEGER,
    is_done              INTEGER NOT NULL DEFAULT 0,
    created_at           REAL NOT NULL,
    updated_at           REAL NOT NULL
);
CREATE INDEX tasks_responsible ON tasks(responsible_user_id, id);
