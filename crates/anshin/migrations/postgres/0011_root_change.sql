-- Changing the root of trust is a manual key operation under dual control
-- like the others: one operator asks, another approves, and the approved
-- request is carried out once, offline, by `anshin keys change-root`. It
-- concerns the whole installation, so its tenant is NULL; `target` says
-- what the new root is (`file`, `shares:K/N`, `pkcs11`), so the approver
-- approves exactly that; `executed_at` makes it single-use.

ALTER TABLE key_requests DROP CONSTRAINT key_requests_operation_check;
ALTER TABLE key_requests
    ADD CONSTRAINT key_requests_operation_check
        CHECK (operation IN ('rotate', 'retire', 'shred_tenant', 'change_root')),
    ADD COLUMN target TEXT,
    ADD COLUMN executed_at BIGINT,
    ADD CONSTRAINT key_requests_tenant_scope CHECK ((operation = 'change_root') = (tenant_id IS NULL)),
    ADD CONSTRAINT key_requests_target CHECK ((operation = 'change_root') = (target IS NOT NULL));
