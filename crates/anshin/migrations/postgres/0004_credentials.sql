-- Credential lifecycle: API keys that expire, several per principal while a
-- rotation's overlap runs; per-principal IP allow-lists; the per-tenant key
-- policy; and the failed-authentication counters behind the lockout, kept in
-- the database so that every node sees them.
--
-- principals.key_hash moves to principal_keys (one source of truth for keys).
--
-- Keys that exist before this migration expire 90 days after it runs (the
-- default lifetime, counted from when the policy arrives, so an upgrade never
-- cuts off a running integration at once); keys of disabled principals are
-- revoked at the time their principal was disabled. Every key has an expiry.

CREATE TABLE principal_keys (
    key_hash     BYTEA PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX principal_keys_principal ON principal_keys (principal_id, created_at);
INSERT INTO principal_keys (key_hash, principal_id, created_at, expires_at, revoked_at)
    SELECT key_hash, id, created_at, CAST(floor(extract(epoch FROM now())) AS BIGINT) * 1000 + 7776000000, disabled_at
    FROM principals;

ALTER TABLE principals DROP COLUMN key_hash;
-- CIDR blocks separated by commas; NULL: any address.
ALTER TABLE principals ADD COLUMN allowed_ips TEXT;

-- Per-tenant settings; a NULL column means the default applies.
CREATE TABLE tenant_settings (
    tenant_id         TEXT PRIMARY KEY REFERENCES tenants (id),
    -- Lifetime of new API keys (default 90 days).
    key_lifetime_days INTEGER CHECK (key_lifetime_days BETWEEN 1 AND 365),
    -- How long a replaced key keeps working after a rotation (default 24 hours).
    key_overlap_hours INTEGER CHECK (key_overlap_hours BETWEEN 0 AND 168)
);

-- Failed authentications by source (an IPv4 address or an IPv6 /64), kept for
-- the counting window only.
CREATE TABLE auth_failures (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX auth_failures_source ON auth_failures (source, at);

-- Sources locked out after too many failures (PCI DSS v4.0 8.3.4).
CREATE TABLE auth_lockouts (
    source       TEXT PRIMARY KEY,
    locked_at    BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
