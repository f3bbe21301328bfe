-- CRM records for the permission core: custom fields, lead links, subscriptions, notifications.

-- Custom field definitions per entity. Values live in each record's `custom` JSON, keyed by field id.
CREATE TABLE custom_fields (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL CHECK (entity IN ('leads', 'contacts', 'companies')),
    name        TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('text', 'number', 'select', 'date')),
    options     TEXT NOT NULL DEFAULT '[]',           -- JSON list of strings, for 'select'
    sort        INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL
);
CREATE INDEX custom_fields_entity ON custom_fields(entity, sort, id);

CREATE TABLE lead_contacts (
    lead_id     INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (lead_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX lead_contacts_contact ON lead_contacts(contact_id, lead_id);

-- Lead participants (SPEC rule 5). (user_id, lead_id) drives "my subscribed leads, newest first".
CREATE TABLE lead_subscribers (
    lead_id     INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    PRIMARY KEY (lead_id, user_id)
) WITHOUT ROWID;
CREATE INDEX lead_subscribers_user ON lead_subscribers(user_id, lead_id);

-- One row per subscriber per change of a lead; the real-time hub pushes them (issue 5).
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    lead_id     INTEGER NOT NULL,                     -- no FK: a deleted lead's notice stays readable
    type        TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL,
    read_at     REAL
);
CREATE INDEX notifications_user ON notifications(user_id, id);

ALTER TABLE pipelines ADD COLUMN updated_at REAL NOT NULL DEFAULT 0;

-- Index shapes for the permission-filtered list plans (auth/visibility.py): every visible slice of
-- leads is an equality prefix followed by id, so each slice reads newest-first with no sort.
--   (responsible, id)          M and G users in uniform rights   -- leads_responsible (0001)
--   (stage, responsible, id)   per-stage M and G cells           -- leads_stage (0001)
--   (stage, id)                per-stage A cells and stage filters
CREATE INDEX leads_stage_id ON leads(stage_id, id);
CREATE INDEX leads_updated ON leads(updated_at, id);
CREATE INDEX contacts_company ON contacts(company_id);
CREATE INDEX leads_company ON leads(company_id);
CREATE INDEX tasks_entity ON tasks(entity_type, entity_id);
