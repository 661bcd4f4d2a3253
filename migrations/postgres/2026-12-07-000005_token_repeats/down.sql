DROP INDEX idx_token_search;
ALTER TABLE idx_token DROP COLUMN repeated;
CREATE INDEX idx_token_search ON idx_token (param, code, system, implicit);
