-- record_keys was keyed by the record's random id, so every tokenization
-- inserted into a random leaf of its primary-key index. A data key now gets an
-- ascending id from a sequence (index inserts at the right edge) and each data
-- row names its key by that id. A sequence never hands out an id twice, so a
-- row restored from a data backup never names a later record's key.
--
-- record_id stays, unindexed: the wrap of the data key is bound to it (the
-- rewrap needs it), and it lets an operator see whose key a row is.

CREATE SEQUENCE record_key_ids;

CREATE TABLE record_keys_by_id (
    id          BIGINT PRIMARY KEY DEFAULT nextval('record_key_ids'),
    record_id   TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'customer', 'order')),
    purpose     TEXT NOT NULL DEFAULT 'kek' CHECK (purpose = 'kek'),
    kek_version INTEGER NOT NULL,
    wrapped_dek BYTEA NOT NULL,
    FOREIGN KEY (tenant_id, purpose, kek_version) REFERENCES tenant_keys (tenant_id, purpose, version)
);
ALTER SEQUENCE record_key_ids OWNED BY record_keys_by_id.id;

INSERT INTO record_keys_by_id (record_id, tenant_id, kind, purpose, kek_version, wrapped_dek)
SELECT record_id, tenant_id, kind, purpose, kek_version, wrapped_dek FROM record_keys ORDER BY record_id;

ALTER TABLE cards ADD COLUMN key_id BIGINT;
ALTER TABLE customers ADD COLUMN key_id BIGINT;
ALTER TABLE order_shipping ADD COLUMN key_id BIGINT;

UPDATE cards c SET key_id = k.id FROM record_keys_by_id k WHERE k.record_id = c.token;
UPDATE customers c SET key_id = k.id FROM record_keys_by_id k WHERE k.record_id = c.id;
UPDATE order_shipping s SET key_id = k.id FROM record_keys_by_id k WHERE k.record_id = s.order_id;

DROP TABLE record_keys;
ALTER TABLE record_keys_by_id RENAME TO record_keys;
ALTER TABLE record_keys RENAME CONSTRAINT record_keys_by_id_pkey TO record_keys_pkey;
ALTER TABLE record_keys RENAME CONSTRAINT record_keys_by_id_tenant_id_purpose_kek_version_fkey TO record_keys_tenant_id_purpose_kek_version_fkey;
ALTER TABLE record_keys RENAME CONSTRAINT record_keys_by_id_kind_check TO record_keys_kind_check;
ALTER TABLE record_keys RENAME CONSTRAINT record_keys_by_id_purpose_check TO record_keys_purpose_check;
