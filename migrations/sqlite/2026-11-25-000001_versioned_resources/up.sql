-- Every version of every resource, in the order it was written. `seq` is the
-- global write order: history is read by it, and it anchors paging snapshots.
CREATE TABLE resource_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    -- milliseconds since the Unix epoch, UTC; equals meta.lastUpdated
    last_updated BIGINT NOT NULL,
    -- the interaction that wrote this version: POST, PUT, PATCH or DELETE
    method TEXT NOT NULL,
    -- compact FHIR JSON with meta set; NULL for a deletion (tombstone)
    body BLOB,
    UNIQUE (resource_type, id, version_id)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (resource_type, seq);

-- The current version of each resource: one row per logical id.
CREATE TABLE resources (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    current_seq BIGINT NOT NULL REFERENCES resource_versions (seq),
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;
