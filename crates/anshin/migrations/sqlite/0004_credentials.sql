-- Credential lifecycle: API keys that expire, several per principal while a
-- rotation's overlap runs; per-principal IP allow-lists; the per-tenant key
-- policy; and the failed-authentication counters behind the lockout, kept in
-- the database so that every node sees them.
--
-- principals.key_hash moves to principal_keys (one source of truth for keys).
-- SQLite cannot drop a UNIQUE column, so principals is rebuilt; the migration
-- runner applies migrations with foreign keys off and checks them before commit.
--
-- Keys that exist before this migration expire 90 days after it runs (the
-- default lifetime, counted from when the policy arrives, so an upgrade never
-- cuts off a running integration at once); keys of disabled principals are
-- revoked at the time their principal was disabled. Every key has an expiry.

CREATE TABLE principals_new (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'shop', 'processor', 'auditor')),
    tenant_id   TEXT REFERENCES tenants (id),
    shop_id     TEXT REFERENCES shops (id),
    -- CIDR blocks separated by commas; NULL: any address.
    allowed_ips TEXT,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
) STRICT;
INSERT INTO principals_new (id, name, role, tenant_id, shop_id, allowed_ips, created_at, disabled_at)
    SELECT id, name, role, tenant_id, shop_id, NULL, created_at, disabled_at FROM principals;

CREATE TABLE principal_keys (
    key_hash     BLOB PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT, WITHOUT ROWID;
INSERT INTO principal_keys (key_hash, principal_id, created_at, expires_at, revoked_at)
    SELECT key_hash, id, created_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 7776000000, disabled_at
    FROM principals;

DROP TABLE principals;
ALTER TABLE principals_new RENAME TO principals;
CREATE INDEX principals_tenant ON principals (tenant_id, id);
CREATE INDEX principal_keys_principal ON principal_keys (principal_id, created_at);

-- Per-tenant settings; a NULL column means the default applies.
CREATE TABLE tenant_settings (
    tenant_id         TEXT PRIMARY KEY REFERENCES tenants (id),
    -- Lifetime of new API keys (default 90 days).
    key_lifetime_days INTEGER CHECK (key_lifetime_days BETWEEN 1 AND 365),
    -- How long a replaced key keeps working after a rotation (default 24 hours).
    key_overlap_hours INTEGER CHECK (key_overlap_hours BETWEEN 0 AND 168)
) STRICT;

-- Failed authentications by source (an IPv4 address or an IPv6 /64), kept for
-- the counting window only.
CREATE TABLE auth_failures (
    source TEXT NOT NULL,
    at     INTEGER NOT NULL
) STRICT;
CREATE INDEX auth_failures_source ON auth_failures (source, at);

-- Sources locked out after too many failures (PCI DSS v4.0 8.3.4).
CREATE TABLE auth_lockouts (
    source       TEXT PRIMARY KEY,
    locked_at    INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
) STRICT;
