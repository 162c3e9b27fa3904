-- Shipping data of orders, readable by the selling shop only inside the
-- retention window, then crypto-shredded (data key and ciphertexts set to NULL,
-- purged_at set) once the window and the legal retention period have passed.
CREATE TABLE order_shipping (
    order_id       TEXT PRIMARY KEY REFERENCES orders (id),
    kek_version    INTEGER,
    wrapped_dek    BYTEA,
    name_ct        BYTEA,
    postal_code_ct BYTEA,
    address_ct     BYTEA,
    phone_ct       BYTEA,
    purged_at      BIGINT
);

-- Per-tenant retention rules (NULL: the default applies).
ALTER TABLE tenant_settings ADD COLUMN retention_window_days INTEGER CHECK (retention_window_days BETWEEN 1 AND 90);
ALTER TABLE tenant_settings ADD COLUMN legal_retention_days INTEGER CHECK (legal_retention_days BETWEEN 0 AND 3650);
ALTER TABLE tenant_settings ADD COLUMN export_daily_rows INTEGER CHECK (export_daily_rows BETWEEN 0 AND 1000000);

-- Completed orders by completion time, for the purge job.
CREATE INDEX orders_completed ON orders (tenant_id, completed_at) WHERE completed_at IS NOT NULL;

-- Operator approvals that raise one principal's daily export limit.
CREATE TABLE export_approvals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    principal_id TEXT NOT NULL REFERENCES principals (id),
    approved_by  TEXT NOT NULL REFERENCES principals (id),
    rows_allowed BIGINT NOT NULL CHECK (rows_allowed > 0),
    reason       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX export_approvals_principal ON export_approvals (principal_id, expires_at);
