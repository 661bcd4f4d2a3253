DROP TABLE resource_text;
DROP TABLE search_snapshots;
DROP TABLE store_meta;
DROP TABLE idx_uri;
DROP TABLE idx_quantity;
DROP TABLE idx_number;
DROP TABLE idx_date;
DROP TABLE idx_reference;
DROP TABLE idx_token;
DROP TABLE idx_string;
CREATE TABLE resources_unkeyed (
    resource_type TEXT NOT NULL,
    id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    current_seq BIGINT NOT NULL REFERENCES resource_versions (seq),
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;
INSERT INTO resources_unkeyed SELECT resource_type, id, version_id, last_updated, deleted, current_seq FROM resources;
DROP TABLE resources;
ALTER TABLE resources_unkeyed RENAME TO resources;
