-- The audit log (RFC 9162 Merkle tree), in a file of its own beside the
-- vault's (see migrations/sqlite/0006_audit_outbox.sql for why). One writer
-- thread appends, so an entry gets its place in the log (idx, the rowid) when it
-- is written: the order is total and has no gaps. The integrator later hashes
-- new entries into the tree (audit_nodes, audit_head) and signs a checkpoint.

CREATE TABLE audit_entries (
    idx          INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    tenant_id    TEXT,
    principal_id TEXT,
    kind         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    leaf_hash    BLOB NOT NULL,
    entry        BLOB NOT NULL
) STRICT;
CREATE INDEX audit_principal ON audit_entries (principal_id, time_ms);

-- Per-tenant keyed hashes of the customers an entry touched: a shopper's access
-- history without any personal data in the log.
CREATE TABLE audit_subjects (
    subject BLOB NOT NULL,
    idx     INTEGER NOT NULL,
    PRIMARY KEY (subject, idx)
) STRICT, WITHOUT ROWID;

-- Hashes of complete subtrees at tree levels 8, 16, …: the tlog tiles above
-- level 0 (level-0 hashes are audit_entries.leaf_hash).
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

-- The integrated tree: its size, its right edge and the latest signed checkpoint.
CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    frontier   BLOB NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Checkpoints kept for later consistency checks (at most one per interval).
CREATE TABLE audit_checkpoints (
    size       INTEGER PRIMARY KEY,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- The highest audit_outbox id of the vault's file already moved into this log.
CREATE TABLE audit_outbox_taken (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    upto INTEGER NOT NULL
) STRICT;
