DROP INDEX idx_token_search;
CREATE INDEX idx_token_search ON idx_token (param, code, system);
