-- Alerts raised by the detectors over the audit log (src/audit/detect.rs) and
-- their webhook delivery state. Summaries hold ids, counts and codes only; the
-- evidence is a JSON array of audit entry indexes.

CREATE TABLE alerts (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    tenant_id       TEXT,
    principal_id    TEXT,
    summary         TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    -- One ongoing condition, one row: the first alert per key is kept.
    dedup_key       TEXT NOT NULL UNIQUE,
    observed_at     INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    -- Webhook delivery: attempts made, when it was delivered, when to try
    -- next (NULL: delivered, given up, or no webhook was configured).
    attempts        INTEGER NOT NULL DEFAULT 0,
    delivered_at    INTEGER,
    next_attempt_at INTEGER,
    last_error      TEXT
) STRICT;
CREATE INDEX alerts_tenant ON alerts (tenant_id, seq);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- The detectors' place in the log: entries below next_index were examined.
-- One node at a time holds it (owner until lease_until) and moves it forward
-- compare-and-swap, in the transaction that stores the alerts those entries
-- raised, so each entry is examined once however many nodes run.
CREATE TABLE alert_cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    next_index  INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER NOT NULL
) STRICT;
INSERT INTO alert_cursor (id, next_index, owner, lease_until) VALUES (1, 0, NULL, 0);
