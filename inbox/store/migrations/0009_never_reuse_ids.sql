-- Ids of pipelines, stages and custom fields are never given out twice. A plain INTEGER PRIMARY KEY
-- hands a deleted row's id (when it was the highest) to the next row, and rights, stored events and
-- clients name these by id: a new stage must not inherit what was said about an old one. Each delete
-- (cascades included) records the highest id retired; inserts (store/catalog.py) start above it.
CREATE TABLE retired_ids (
    name  TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
);

CREATE TRIGGER pipelines_retire_id AFTER DELETE ON pipelines BEGIN
    INSERT OR REPLACE INTO retired_ids VALUES
        ('pipelines', max(OLD.id, coalesce((SELECT last FROM retired_ids WHERE name = 'pipelines'), 0)));
END;
CREATE TRIGGER stages_retire_id AFTER DELETE ON stages BEGIN
    INSERT OR REPLACE INTO retired_ids VALUES
        ('stages', max(OLD.id, coalesce((SELECT last FROM retired_ids WHERE name = 'stages'), 0)));
END;
CREATE TRIGGER custom_fields_retire_id AFTER DELETE ON custom_fields BEGIN
    INSERT OR REPLACE INTO retired_ids VALUES
        ('custom_fields', max(OLD.id, coalesce((SELECT last FROM retired_ids WHERE name = 'custom_fields'), 0)));
END;
