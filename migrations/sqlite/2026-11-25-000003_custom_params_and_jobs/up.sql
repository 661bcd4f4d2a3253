-- Custom search parameters (from stored SearchParameter resources): one row
-- per base type and code. `ready` turns 1 when a $reindex of the type has
-- indexed every resource written before the parameter was defined.
CREATE TABLE custom_search_params (
    resource_type TEXT NOT NULL,
    code TEXT NOT NULL,
    url TEXT NOT NULL,
    expression TEXT NOT NULL,
    ready BOOLEAN NOT NULL,
    PRIMARY KEY (resource_type, code)
);

-- Background jobs. A job is claimed by setting status 'running'; its cursor
-- lets it resume where it stopped after a restart.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    -- comma-separated resource types; empty for all
    types TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor BIGINT NOT NULL,
    done BIGINT NOT NULL,
    total BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX jobs_status ON jobs (status, created);
