-- The delivery worker reads what is due target by target (store/outbox.py ``due``): every target that
-- ever had a row is in outbound_targets, and each target's rows are an index range by due time. A
-- target at its in-flight limit (a dead provider with a long queue) then costs nothing to leave out.
CREATE INDEX outbox_target ON outbox(kind, target_id, due_at, id);
INSERT OR IGNORE INTO outbound_targets (kind, target_id) SELECT DISTINCT kind, target_id FROM outbox;
