-- A resource may carry one code twice (two codings alike but for their
-- display, one identifier under two types). `repeated` marks each such row
-- after the first, so the count of one code's matches is a count of index
-- entries, with no DISTINCT to compare (16,310 entries: 1.1 ms to 0.6).
-- Rows written before this have it false: the index version that came
-- with it rebuilds them.
ALTER TABLE idx_token ADD COLUMN repeated BOOLEAN NOT NULL DEFAULT 0;
DROP INDEX idx_token_search;
CREATE INDEX idx_token_search ON idx_token (param, code, system, implicit, repeated);
