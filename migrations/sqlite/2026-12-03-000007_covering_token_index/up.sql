-- A token search with a system also matches rows whose system is implied
-- (`system IS NULL AND implicit`): with `implicit` in the index, the index
-- answers it alone, without reading each row from the table.
DROP INDEX idx_token_search;
CREATE INDEX idx_token_search ON idx_token (param, code, system, implicit);
