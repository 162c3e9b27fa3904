-- Signed integrity baselines kept off the shop's host (`anshin integrity
-- baseline|approve --server`): the Ed25519 key pinned for each host, and
-- every version of its baseline with who approved it and why. The file holds
-- paths, sizes, owners and hashes of the shop's application, no file content.
CREATE TABLE integrity_hosts (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    host       TEXT NOT NULL,
    public_key TEXT NOT NULL,
    pinned_by  TEXT NOT NULL,
    pinned_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, host)
);

CREATE TABLE integrity_baselines (
    tenant_id   TEXT NOT NULL,
    host        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    action      TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    reason      TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    added       BIGINT NOT NULL,
    removed     BIGINT NOT NULL,
    changed     BIGINT NOT NULL,
    -- True when the file's history continues the previous version's.
    continues   BOOLEAN NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    file        BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, host, version),
    FOREIGN KEY (tenant_id, host) REFERENCES integrity_hosts (tenant_id, host)
);
