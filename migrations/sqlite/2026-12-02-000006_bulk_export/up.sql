-- Bulk Data export jobs: what was asked (JSON) and where the job stands
-- among its resource types; the NDJSON it wrote, a part per batch, kept
-- here so that any node can serve it and a restarted job resumes.
ALTER TABLE jobs ADD COLUMN params TEXT;
ALTER TABLE jobs ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN parts BIGINT NOT NULL DEFAULT 0;
CREATE TABLE export_parts (
    job_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    resource_type TEXT NOT NULL,
    resources BIGINT NOT NULL,
    -- NDJSON, stored as bodies are (hearth-store's body.rs)
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, n)
);
