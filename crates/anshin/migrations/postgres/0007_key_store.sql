-- Key material moves out of the data tables. Every record's data key (wrapped
-- by a tenant KEK version) is now a row of record_keys, and with tenant_keys
-- this is the key state: the data tables hold ciphertexts only. A data backup
-- (pg_dump with --exclude-table for both key tables) leaves the key state out, so a record deleted after the
-- backup cannot be read from it: its data key is gone from the key state the
-- backup must be restored next to (crypto-shredding that holds).
--
-- The foreign key to tenant_keys makes destroying a KEK version that a record
-- still uses impossible, whatever node asks. There is no index by version: it
-- would be one more B-tree insert per tokenization, the writer's bottleneck;
-- counting per version and the rewrap read the table in primary-key order.

CREATE TABLE record_keys (
    record_id   TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'customer', 'order')),
    purpose     TEXT NOT NULL DEFAULT 'kek' CHECK (purpose = 'kek'),
    kek_version INTEGER NOT NULL,
    wrapped_dek BYTEA NOT NULL,
    FOREIGN KEY (tenant_id, purpose, kek_version) REFERENCES tenant_keys (tenant_id, purpose, version)
);

INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek)
SELECT token, tenant_id, 'card', kek_version, wrapped_dek FROM cards WHERE wrapped_dek IS NOT NULL;
INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek)
SELECT id, tenant_id, 'customer', kek_version, wrapped_dek FROM customers WHERE wrapped_dek IS NOT NULL;
INSERT INTO record_keys (record_id, tenant_id, kind, kek_version, wrapped_dek)
SELECT s.order_id, o.tenant_id, 'order', s.kek_version, s.wrapped_dek
FROM order_shipping s JOIN orders o ON o.id = s.order_id WHERE s.wrapped_dek IS NOT NULL;

ALTER TABLE cards DROP COLUMN kek_version, DROP COLUMN wrapped_dek;
ALTER TABLE customers DROP COLUMN kek_version, DROP COLUMN wrapped_dek;
ALTER TABLE order_shipping DROP COLUMN kek_version, DROP COLUMN wrapped_dek;

-- When each KEK version became current and (for versions that are gone) was
-- destroyed; the count of encryptions is kept per node in memory and summed
-- here, for the 2^32 random-nonce bound.
ALTER TABLE tenant_keys ADD COLUMN encryptions BIGINT NOT NULL DEFAULT 0;

-- Manual key operations under dual control: one operator asks, another approves.
CREATE TABLE key_requests (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id),
    operation    TEXT NOT NULL CHECK (operation IN ('rotate', 'retire', 'shred_tenant')),
    below        INTEGER,
    reason       TEXT NOT NULL,
    requested_by TEXT NOT NULL REFERENCES principals (id),
    requested_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    decided_by   TEXT REFERENCES principals (id),
    decided_at   BIGINT,
    outcome      TEXT CHECK (outcome IN ('approved', 'rejected'))
);
CREATE INDEX key_requests_open ON key_requests (requested_at) WHERE decided_at IS NULL;
