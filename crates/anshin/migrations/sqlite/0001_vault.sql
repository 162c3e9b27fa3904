-- The vault: tenants, shops, principals, tenant keys, cards, customers, orders.
-- Sensitive columns (*_ct) hold AES-256-GCM blobs under the row's data key
-- (wrapped_dek), itself wrapped by the tenant's key-encryption key (kek_version).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    purpose    TEXT NOT NULL CHECK (purpose IN ('kek', 'fingerprint')),
    version    INTEGER NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, purpose, version)
) STRICT;

CREATE TABLE shops (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX shops_tenant ON shops (tenant_id, id);

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'shop', 'processor', 'auditor')),
    tenant_id   TEXT REFERENCES tenants (id),
    shop_id     TEXT REFERENCES shops (id),
    key_hash    BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
) STRICT;
CREATE INDEX principals_tenant ON principals (tenant_id, id);

CREATE TABLE cards (
    token       TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    -- The shop that first tokenized the card (NULL for operators).
    shop_id     TEXT REFERENCES shops (id),
    fingerprint BLOB,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    kek_version INTEGER,
    wrapped_dek BLOB,
    number_ct   BLOB,
    expiry_ct   BLOB,
    holder_ct   BLOB,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER
) STRICT;
-- NULL fingerprints (shredded cards) never collide.
CREATE UNIQUE INDEX cards_fingerprint ON cards (tenant_id, fingerprint);

-- Other shops that tokenized (and so may see) a card; tokens are per tenant.
CREATE TABLE card_shops (
    token   TEXT NOT NULL REFERENCES cards (token),
    shop_id TEXT NOT NULL REFERENCES shops (id),
    PRIMARY KEY (token, shop_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE customers (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    shop_id        TEXT REFERENCES shops (id),
    kek_version    INTEGER,
    wrapped_dek    BLOB,
    name_ct        BLOB,
    name_kana_ct   BLOB,
    postal_code_ct BLOB,
    address_ct     BLOB,
    phone_ct       BLOB,
    email_ct       BLOB,
    fax_ct         BLOB,
    created_at     INTEGER NOT NULL,
    deleted_at     INTEGER
) STRICT;

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    shop_id      TEXT NOT NULL REFERENCES shops (id),
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    card_token   TEXT REFERENCES cards (token),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('created', 'completed', 'cancelled')),
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;
CREATE INDEX orders_shop ON orders (shop_id, created_at, id);
