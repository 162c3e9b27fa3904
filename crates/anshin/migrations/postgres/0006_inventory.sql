-- Data inventories sent by `anshin scan --inventory FILE --server URL`, every
-- upload kept (the history shows how the tenant's personal data moved). The
-- body is the inventory as the server validated it: locations, categories and
-- counts, never a value.
CREATE TABLE inventories (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    uploaded_by TEXT NOT NULL REFERENCES principals (id),
    uploaded_at BIGINT NOT NULL,
    scanned_at  TEXT NOT NULL,
    locations   BIGINT NOT NULL,
    findings    BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX inventories_tenant ON inventories (tenant_id, uploaded_at);
