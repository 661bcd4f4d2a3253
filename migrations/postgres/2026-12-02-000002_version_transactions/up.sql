-- The transaction that wrote each version. `seq` is taken when a version is
-- inserted, not when its transaction commits, so on PostgreSQL (many
-- writers at once) a smaller seq can commit after a larger one has been
-- seen. A history page records the database snapshot it was read in, and
-- later pages show exactly the versions visible in it.
ALTER TABLE resource_versions ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
