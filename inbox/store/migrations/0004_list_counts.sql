-- Exact list totals without counting every visible row (docs/performance.md, problem 3).
-- A user's visible leads are a union of (stage, responsible user) cells plus subscriptions, so the
-- number of leads per cell, kept by triggers, answers any unfiltered total with a few small sums.

CREATE TABLE lead_counts (
    stage_id             INTEGER NOT NULL,
    responsible_user_id  INTEGER NOT NULL,
    n                    INTEGER NOT NULL,
    PRIMARY KEY (stage_id, responsible_user_id)
) WITHOUT ROWID;
CREATE INDEX lead_counts_responsible ON lead_counts(responsible_user_id, stage_id);
INSERT INTO lead_counts SELECT stage_id, responsible_user_id, count(*) FROM leads GROUP BY 1, 2;

CREATE TRIGGER lead_counts_insert AFTER INSERT ON leads BEGIN
    INSERT INTO lead_counts VALUES (new.stage_id, new.responsible_user_id, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER lead_counts_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_counts SET n = n - 1
    WHERE stage_id = old.stage_id AND responsible_user_id = old.responsible_user_id;
END;
CREATE TRIGGER lead_counts_move AFTER UPDATE OF stage_id, responsible_user_id ON leads
WHEN old.stage_id != new.stage_id OR old.responsible_user_id != new.responsible_user_id BEGIN
    UPDATE lead_counts SET n = n - 1
    WHERE stage_id = old.stage_id AND responsible_user_id = old.responsible_user_id;
    INSERT INTO lead_counts VALUES (new.stage_id, new.responsible_user_id, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- A subscription carries its lead's cell, so "subscribed but not already visible by the rules" is
-- counted from one index without visiting the leads.
ALTER TABLE lead_subscribers ADD COLUMN stage_id INTEGER;
ALTER TABLE lead_subscribers ADD COLUMN responsible_user_id INTEGER;
UPDATE lead_subscribers SET (stage_id, responsible_user_id) =
    (SELECT stage_id, responsible_user_id FROM leads WHERE leads.id = lead_subscribers.lead_id);
CREATE INDEX lead_subscribers_cell ON lead_subscribers(user_id, stage_id, responsible_user_id);

CREATE TRIGGER lead_subscribers_fill AFTER INSERT ON lead_subscribers BEGIN
    UPDATE lead_subscribers SET (stage_id, responsible_user_id) =
        (SELECT stage_id, responsible_user_id FROM leads WHERE id = new.lead_id)
    WHERE lead_id = new.lead_id AND user_id = new.user_id;
END;
CREATE TRIGGER lead_subscribers_follow AFTER UPDATE OF stage_id, responsible_user_id ON leads
WHEN old.stage_id != new.stage_id OR old.responsible_user_id != new.responsible_user_id BEGIN
    UPDATE lead_subscribers SET stage_id = new.stage_id, responsible_user_id = new.responsible_user_id
    WHERE lead_id = new.id;
END;
