-- Search indexes. Every row belongs to the current version of one resource
-- (res_key) and one search parameter (param, qualified by type:
-- 'Patient.family'); rows are replaced in the transaction that writes the
-- version, and removed when the resource is deleted. The tables are
-- clustered by resource, so writing one resource's rows touches few pages.

-- resources gains an integer key that index rows refer to.
CREATE TABLE resources_keyed (
    res_key INTEGER PRIMARY KEY,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    current_seq BIGINT NOT NULL REFERENCES resource_versions (seq),
    UNIQUE (resource_type, id)
);
INSERT INTO resources_keyed (resource_type, id, version_id, last_updated, deleted, current_seq)
    SELECT resource_type, id, version_id, last_updated, deleted, current_seq FROM resources;
DROP TABLE resources;
ALTER TABLE resources_keyed RENAME TO resources;

CREATE TABLE idx_string (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    -- the entry's number within its resource
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    -- for a component of a composite parameter ('Observation.code-value-quantity$1'):
    -- which composite value of the resource it belongs to
    grp INTEGER,
    -- lower case, accents removed, whitespace collapsed
    norm TEXT NOT NULL,
    exact TEXT NOT NULL,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_string_search ON idx_string (param, norm);

CREATE TABLE idx_token (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    system TEXT,
    code TEXT,
    -- display / CodeableConcept.text, normalised, for :text
    text TEXT,
    -- an Identifier's type, for :of-type
    type_system TEXT,
    type_code TEXT,
    -- 1 for a primitive (code, boolean, …) whose system its value set implies
    implicit BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_token_search ON idx_token (param, code, system);

CREATE TABLE idx_reference (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    target_type TEXT,
    target_id TEXT,
    target_version TEXT,
    -- absolute, canonical (without |version) or contained (#id) references
    url TEXT,
    ident_system TEXT,
    ident_value TEXT,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_reference_search ON idx_reference (param, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
CREATE INDEX idx_reference_url ON idx_reference (param, url);

CREATE TABLE idx_date (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    -- [lo, hi) in milliseconds since the epoch; open ends are the extremes
    lo BIGINT NOT NULL,
    hi BIGINT NOT NULL,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_date_lo ON idx_date (param, lo);
CREATE INDEX idx_date_hi ON idx_date (param, hi);

CREATE TABLE idx_number (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    value DOUBLE NOT NULL,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_number_search ON idx_number (param, value);

CREATE TABLE idx_quantity (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    value DOUBLE NOT NULL,
    system TEXT,
    code TEXT,
    unit TEXT,
    -- the value in a canonical UCUM unit, where the unit is known
    canonical_value DOUBLE,
    canonical_code TEXT,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_quantity_search ON idx_quantity (param, code, value);
CREATE INDEX idx_quantity_canonical ON idx_quantity (param, canonical_code, canonical_value);

CREATE TABLE idx_uri (
    res_key INTEGER NOT NULL REFERENCES resources (res_key),
    n INTEGER NOT NULL,
    param TEXT NOT NULL,
    grp INTEGER,
    uri TEXT NOT NULL,
    PRIMARY KEY (res_key, n)
) WITHOUT ROWID;
CREATE INDEX idx_uri_search ON idx_uri (param, uri);

-- Which version of the extraction rules the index was built with; a
-- different one makes the store rebuild the index when it opens.
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- The ordered result keys of a search larger than one page, so that its
-- paging links keep meaning the same list while others write.
CREATE TABLE search_snapshots (
    id TEXT PRIMARY KEY NOT NULL,
    created BIGINT NOT NULL,
    total BIGINT NOT NULL,
    -- res_key values, 8 bytes each, little-endian
    res_keys BLOB NOT NULL
);
CREATE INDEX search_snapshots_created ON search_snapshots (created);

-- Full text for _text (the narrative) and _content (every text value), one
-- row per current resource; rowid is res_key.
CREATE VIRTUAL TABLE resource_text USING fts5(
    narrative,
    content,
    tokenize = 'unicode61 remove_diacritics 2',
    -- which rows and columns hold a term, not where: terms are ANDed and ORed,
    -- never matched as phrases, and the index stays small
    detail = column
);
