-- The whole schema on PostgreSQL: the same tables as on SQLite
-- (migrations/sqlite/), with PostgreSQL's types. Text that is searched by
-- range or prefix, or sorted, uses the "C" collation: code point order,
-- as on SQLite, so prefix bounds and sort orders agree on both backends.

-- Every version of every resource, in the order it was written. `seq` is the
-- global write order: history is read by it, and it anchors paging snapshots.
CREATE TABLE resource_versions (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    version_id BIGINT NOT NULL,
    -- milliseconds since the Unix epoch, UTC; equals meta.lastUpdated
    last_updated BIGINT NOT NULL,
    -- the interaction that wrote this version: POST, PUT, PATCH or DELETE
    method TEXT NOT NULL,
    -- the JSON (see hearth-store's body.rs); NULL for a deletion (tombstone)
    body BYTEA,
    UNIQUE (resource_type, id, version_id)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);

-- The current version of each resource: one row per logical id.
CREATE TABLE resources (
    res_key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resource_type TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    current_seq BIGINT NOT NULL REFERENCES resource_versions (seq),
    UNIQUE (resource_type, id)
);
CREATE INDEX resources_type_updated ON resources (resource_type, last_updated);

-- Search indexes: every row belongs to the current version of one resource
-- (res_key) and one search parameter (param, qualified by type).
CREATE TABLE idx_string (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    norm TEXT COLLATE "C" NOT NULL,
    exact TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_string_search ON idx_string (param, norm);

CREATE TABLE idx_token (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    system TEXT COLLATE "C",
    code TEXT COLLATE "C",
    text TEXT COLLATE "C",
    type_system TEXT COLLATE "C",
    type_code TEXT COLLATE "C",
    implicit BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_token_search ON idx_token (param, code, system);

CREATE TABLE idx_reference (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    target_type TEXT COLLATE "C",
    target_id TEXT COLLATE "C",
    target_version TEXT COLLATE "C",
    url TEXT COLLATE "C",
    ident_system TEXT COLLATE "C",
    ident_value TEXT COLLATE "C",
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_reference_search ON idx_reference (param, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
CREATE INDEX idx_reference_url ON idx_reference (param, url);

CREATE TABLE idx_date (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    lo BIGINT NOT NULL,
    hi BIGINT NOT NULL,
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_date_lo ON idx_date (param, lo);
CREATE INDEX idx_date_hi ON idx_date (param, hi);

CREATE TABLE idx_number (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_number_search ON idx_number (param, value);

CREATE TABLE idx_quantity (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    value DOUBLE PRECISION NOT NULL,
    system TEXT COLLATE "C",
    code TEXT COLLATE "C",
    unit TEXT COLLATE "C",
    canonical_value DOUBLE PRECISION,
    canonical_code TEXT COLLATE "C",
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_quantity_search ON idx_quantity (param, code, value);
CREATE INDEX idx_quantity_canonical ON idx_quantity (param, canonical_code, canonical_value);

CREATE TABLE idx_uri (
    res_key BIGINT NOT NULL REFERENCES resources (res_key),
    n BIGINT NOT NULL,
    param TEXT COLLATE "C" NOT NULL,
    grp BIGINT,
    uri TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (res_key, n)
);
CREATE INDEX idx_uri_search ON idx_uri (param, uri);

-- Full text for _text (the narrative) and _content (every text value), one
-- row per current resource. The store hands PostgreSQL words it has already
-- split and normalised, as it does for SQLite's FTS5, so both match alike.
CREATE TABLE resource_text (
    res_key BIGINT PRIMARY KEY REFERENCES resources (res_key),
    narrative TSVECTOR NOT NULL,
    content TSVECTOR NOT NULL
);
CREATE INDEX resource_text_narrative ON resource_text USING GIN (narrative);
CREATE INDEX resource_text_content ON resource_text USING GIN (content);

-- Which version of the extraction rules the index was built with.
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- The ordered result keys of a search larger than one page.
CREATE TABLE search_snapshots (
    id TEXT PRIMARY KEY NOT NULL,
    created BIGINT NOT NULL,
    total BIGINT NOT NULL,
    -- res_key values, 8 bytes each, little-endian
    res_keys BYTEA NOT NULL
);
CREATE INDEX search_snapshots_created ON search_snapshots (created);

-- Custom search parameters (from stored SearchParameter resources).
CREATE TABLE custom_search_params (
    resource_type TEXT NOT NULL,
    code TEXT NOT NULL,
    url TEXT NOT NULL,
    expression TEXT NOT NULL,
    ready BOOLEAN NOT NULL,
    PRIMARY KEY (resource_type, code)
);

-- Background jobs; a node runs a job while it holds its lease.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    types TEXT NOT NULL,
    status TEXT NOT NULL,
    cursor BIGINT NOT NULL,
    done BIGINT NOT NULL,
    total BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    error TEXT,
    owner TEXT,
    lease_until BIGINT
);
CREATE INDEX jobs_status ON jobs (status, created);
