-- Checkout and payments (issue 5). No card number or security code is ever in
-- these tables in clear: sessions name the vault's card token, and the held
-- security code is ciphertext under a key that lives only in nodes' memory
-- (see docs/payments.md).

-- Checkout sessions: opened by a shop's server, used once by a shopper's browser.
CREATE TABLE checkout_sessions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    shop_id        TEXT REFERENCES shops (id),
    created_by     TEXT NOT NULL REFERENCES principals (id),
    amount         BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    order_ref      TEXT NOT NULL,
    allowed_origin TEXT NOT NULL,
    locale         TEXT NOT NULL,
    status         TEXT NOT NULL,
    card_token     TEXT,
    card_brand     TEXT,
    card_last4     TEXT,
    payment_id     TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);

-- Processor routes and generic outbound routes, per tenant. `config` is the
-- route as validated (upstream URL, CA bundle, template, token paths): no
-- card data, only placeholders.
CREATE TABLE outbound_routes (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    config     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Payments through the processor proxy.
CREATE TABLE payments (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    shop_id             TEXT REFERENCES shops (id),
    created_by          TEXT NOT NULL REFERENCES principals (id),
    session_id          TEXT,
    card_token          TEXT NOT NULL,
    route               TEXT NOT NULL,
    amount              BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    capture             BOOLEAN NOT NULL,
    status              TEXT NOT NULL,
    decline_code        TEXT,
    processor_reference TEXT,
    three_ds_id         TEXT,
    challenge_url       TEXT,
    amount_captured     BIGINT NOT NULL DEFAULT 0,
    amount_refunded     BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX payments_session ON payments (session_id);

-- Idempotency keys of POST /v1/payments…: the first request's fingerprint and,
-- once it ended, its answer (payment metadata, never card data).
CREATE TABLE payment_idempotency (
    tenant_id    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    payment_id   TEXT NOT NULL,
    status_code  INTEGER,
    response     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Security codes held for one authorization: AES-256-GCM ciphertext under the
-- epoch key (epoch, creator), which exists only in nodes' memory. Deleted after
-- the authorization or at expires_at (under an hour), whichever comes first.
CREATE TABLE cvc_holds (
    session_id TEXT PRIMARY KEY,
    epoch      BIGINT NOT NULL,
    creator    TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Live nodes' X25519 public keys, one per node and epoch (the private keys
-- never leave the node's memory and are dropped with their epoch).
CREATE TABLE cvc_nodes (
    node_id    TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    public_key BYTEA NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (node_id, epoch)
);

-- Epoch keys, each copy sealed to one node's key of that epoch; deleted with the epoch.
CREATE TABLE cvc_epoch_keys (
    epoch   BIGINT NOT NULL,
    creator TEXT NOT NULL,
    node_id TEXT NOT NULL,
    sealed  BYTEA NOT NULL,
    PRIMARY KEY (epoch, creator, node_id)
);
