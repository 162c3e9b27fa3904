-- The audit log (RFC 9162 Merkle tree). Nodes append entries with idx NULL in
-- their own transactions; the sequencer (one node at a time, under an advisory
-- lock) gives committed entries consecutive idx values, so the log is one total
-- order without gaps or duplicates however many nodes write. The integrator
-- then hashes new entries into the tree and signs a checkpoint.

CREATE TABLE audit_entries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idx          BIGINT UNIQUE,
    time_ms      BIGINT NOT NULL,
    tenant_id    TEXT,
    principal_id TEXT,
    kind         TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    leaf_hash    BYTEA NOT NULL,
    entry        BYTEA NOT NULL
);
CREATE INDEX audit_pending ON audit_entries (id) WHERE idx IS NULL;
CREATE INDEX audit_principal ON audit_entries (principal_id, time_ms);

CREATE TABLE audit_subjects (
    subject  BYTEA NOT NULL,
    entry_id BIGINT NOT NULL REFERENCES audit_entries (id),
    PRIMARY KEY (subject, entry_id)
);

CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       BIGINT NOT NULL,
    frontier   BYTEA NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
