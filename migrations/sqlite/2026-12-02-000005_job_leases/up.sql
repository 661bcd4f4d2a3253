-- A job is run by the node holding its lease (`owner` until `lease_until`,
-- ms since the epoch); another node takes it over when the lease runs out.
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
