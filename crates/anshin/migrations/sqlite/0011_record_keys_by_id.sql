-- record_keys was keyed by the record's random id, so every tokenization
-- inserted into a random leaf of that B-tree: one more page per commit in the
-- WAL, which cost SQLite's tokenize throughput a fifth to a quarter. A data
-- key now gets an ascending id (new rows append at the table's end) and each
-- data row names its key by that id. AUTOINCREMENT never reuses an id, so a
-- row restored from a data backup never names a later record's key.
--
-- record_id stays, unindexed: the wrap of the data key is bound to it (the
-- rewrap needs it), and it lets an operator see whose key a row is.

CREATE TABLE record_keys_by_id (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id   TEXT NOT NULL,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'customer', 'order')),
    purpose     TEXT NOT NULL DEFAULT 'kek' CHECK (purpose = 'kek'),
    kek_version INTEGER NOT NULL,
    wrapped_dek BLOB NOT NULL,
    FOREIGN KEY (tenant_id, purpose, kek_version) REFERENCES tenant_keys (tenant_id, purpose, version)
) STRICT;

INSERT INTO record_keys_by_id (record_id, tenant_id, kind, purpose, kek_version, wrapped_dek)
SELECT record_id, tenant_id, kind, purpose, kek_version, wrapped_dek FROM record_keys ORDER BY record_id;

ALTER TABLE cards ADD COLUMN key_id INTEGER;
ALTER TABLE customers ADD COLUMN key_id INTEGER;
ALTER TABLE order_shipping ADD COLUMN key_id INTEGER;

-- Only to link the existing rows; new rows carry their key's id.
CREATE INDEX record_keys_by_id_record ON record_keys_by_id (record_id);
UPDATE cards SET key_id = (SELECT id FROM record_keys_by_id k WHERE k.record_id = cards.token);
UPDATE customers SET key_id = (SELECT id FROM record_keys_by_id k WHERE k.record_id = customers.id);
UPDATE order_shipping SET key_id = (SELECT id FROM record_keys_by_id k WHERE k.record_id = order_shipping.order_id);
DROP INDEX record_keys_by_id_record;

DROP TABLE record_keys;
ALTER TABLE record_keys_by_id RENAME TO record_keys;
