-- Signed integrity baselines kept off the shop's host (`anshin integrity
-- baseline|approve --server`): the Ed25519 key pinned for each host, and
-- every version of its baseline with who approved it and why. The file holds
-- paths, sizes, owners and hashes of the shop's application, no file content.
CREATE TABLE integrity_hosts (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    host       TEXT NOT NULL,
    public_key TEXT NOT NULL,
    pinned_by  TEXT NOT NULL,
    pinned_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, host)
) STRICT;

CREATE TABLE integrity_baselines (
    tenant_id   TEXT NOT NULL,
    host        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    action      TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    reason      TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    added       INTEGER NOT NULL,
    removed     INTEGER NOT NULL,
    changed     INTEGER NOT NULL,
    -- 1 when the file's history continues the previous version's.
    continues   INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    file        BLOB NOT NULL,
    PRIMARY KEY (tenant_id, host, version),
    FOREIGN KEY (tenant_id, host) REFERENCES integrity_hosts (tenant_id, host)
) STRICT;
