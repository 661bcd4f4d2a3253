ALTER TABLE jobs DROP COLUMN requester;
ALTER TABLE search_snapshots DROP COLUMN grant_key;
DROP TABLE signing_keys;
DROP TABLE version_patients;
