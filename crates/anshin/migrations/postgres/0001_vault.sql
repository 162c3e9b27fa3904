-- The vault: tenants, shops, principals, tenant keys, cards, customers, orders.
-- Sensitive columns (*_ct) hold AES-256-GCM blobs under the row's data key
-- (wrapped_dek), itself wrapped by the tenant's key-encryption key (kek_version).
-- Kept to portable SQL so a PostgreSQL-compatible distributed engine can run it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tenant_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    purpose    TEXT NOT NULL CHECK (purpose IN ('kek', 'fingerprint')),
    version    INTEGER NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, purpose, version)
);

CREATE TABLE shops (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX shops_tenant ON shops (tenant_id, id);

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'shop', 'processor', 'auditor')),
    tenant_id   TEXT REFERENCES tenants (id),
    shop_id     TEXT REFERENCES shops (id),
    key_hash    BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE INDEX principals_tenant ON principals (tenant_id, id);

CREATE TABLE cards (
    token       TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    -- The shop that first tokenized the card (NULL for operators).
    shop_id     TEXT REFERENCES shops (id),
    fingerprint BYTEA,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL,
    kek_version INTEGER,
    wrapped_dek BYTEA,
    number_ct   BYTEA,
    expiry_ct   BYTEA,
    holder_ct   BYTEA,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX cards_fingerprint ON cards (tenant_id, fingerprint);

-- Other shops that tokenized (and so may see) a card; tokens are per tenant.
CREATE TABLE card_shops (
    token   TEXT NOT NULL REFERENCES cards (token),
    shop_id TEXT NOT NULL REFERENCES shops (id),
    PRIMARY KEY (token, shop_id)
);

CREATE TABLE customers (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    shop_id        TEXT REFERENCES shops (id),
    kek_version    INTEGER,
    wrapped_dek    BYTEA,
    name_ct        BYTEA,
    name_kana_ct   BYTEA,
    postal_code_ct BYTEA,
    address_ct     BYTEA,
    phone_ct       BYTEA,
    email_ct       BYTEA,
    fax_ct         BYTEA,
    created_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);

CREATE TABLE orders (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    shop_id      TEXT NOT NULL REFERENCES shops (id),
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    card_token   TEXT REFERENCES cards (token),
    amount       BIGINT NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('created', 'completed', 'cancelled')),
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX orders_shop ON orders (shop_id, created_at, id);
