-- Changing the root of trust is a manual key operation under dual control
-- like the others: one operator asks, another approves, and the approved
-- request is carried out once, offline, by `anshin keys change-root`. It
-- concerns the whole installation, so its tenant is NULL; `target` says
-- what the new root is (`file`, `shares:K/N`, `pkcs11`), so the approver
-- approves exactly that; `executed_at` makes it single-use.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt.

CREATE TABLE key_requests_v2 (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id),
    operation    TEXT NOT NULL CHECK (operation IN ('rotate', 'retire', 'shred_tenant', 'change_root')),
    below        INTEGER,
    target       TEXT,
    reason       TEXT NOT NULL,
    requested_by TEXT NOT NULL REFERENCES principals (id),
    requested_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    decided_by   TEXT REFERENCES principals (id),
    decided_at   INTEGER,
    outcome      TEXT CHECK (outcome IN ('approved', 'rejected')),
    executed_at  INTEGER,
    CHECK ((operation = 'change_root') = (tenant_id IS NULL)),
    CHECK ((operation = 'change_root') = (target IS NOT NULL))
) STRICT;

INSERT INTO key_requests_v2 (id, tenant_id, operation, below, reason, requested_by, requested_at,
                             expires_at, decided_by, decided_at, outcome)
SELECT id, tenant_id, operation, below, reason, requested_by, requested_at,
       expires_at, decided_by, decided_at, outcome
FROM key_requests;

DROP TABLE key_requests;
ALTER TABLE key_requests_v2 RENAME TO key_requests;
CREATE INDEX key_requests_open ON key_requests (requested_at) WHERE decided_at IS NULL;
