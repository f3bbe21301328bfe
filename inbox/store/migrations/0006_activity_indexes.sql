-- Activity filters by time alone and by object type alone read an index in id order instead of
-- walking or sorting the whole log (measured on 1M rows: ~100 ms and ~125 ms before).
CREATE INDEX activity_at ON activity(at, id);
CREATE INDEX activity_object_type ON activity(object_type, id);
