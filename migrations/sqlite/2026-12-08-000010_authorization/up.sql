-- The patients each version of a resource belongs to (its Patient
-- compartment, and for a type outside the CompartmentDefinition the
-- patients it refers to: hearth_model::compartments::patients_of). A
-- deletion belongs to whom the version before it did. Patient-limited
-- grants are enforced through it: for current resources through
-- resources.current_seq, for history through each version's seq.
CREATE TABLE version_patients (
    seq BIGINT NOT NULL,
    patient_id TEXT NOT NULL,
    PRIMARY KEY (seq, patient_id)
) WITHOUT ROWID;
CREATE INDEX version_patients_patient ON version_patients (patient_id, seq);

-- Hearth's own token signing keys (PKCS#8 DER): every node signs and
-- verifies with the same ones; the newest signs.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    private_key BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Who may page a search snapshot, and who started a job: a digest of the
-- grant, and the requester (issuer|client) of a job. NULL for open access.
ALTER TABLE search_snapshots ADD COLUMN grant_key TEXT;
ALTER TABLE jobs ADD COLUMN requester TEXT;
