-- The audit log moves to a file of its own (NAME-audit.db, see
-- migrations/sqlite-audit): entries appended on every read then no longer
-- commit to the vault's file, whose readers would each time drop their page
-- caches. A write that must commit together with its entry (a tokenization)
-- puts the entry here, in the vault's transaction; the sequencer moves it into
-- the log, where it gets its place, and then deletes it here. The log's file
-- records the highest id it has taken, so a move interrupted between the two
-- commits is not taken twice. The old audit tables of this file are copied into
-- the log's file and dropped when the store opens.

CREATE TABLE audit_outbox (
    id           INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    tenant_id    TEXT,
    principal_id TEXT,
    kind         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    leaf_hash    BLOB NOT NULL,
    entry        BLOB NOT NULL,
    -- The keyed hashes of the customers the entry touched, 32 bytes each.
    subjects     BLOB NOT NULL
) STRICT;
