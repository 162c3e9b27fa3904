-- Payment webhooks (issue 5): each shop's endpoint, and the payment events
-- waiting for it or delivered to it (see docs/payments.md).

-- One endpoint per shop. The signing secret is sealed under an installation
-- key wrapped by the root key; while a rotation's overlap runs, the previous
-- secret signs too, until previous_until.
CREATE TABLE webhook_endpoints (
    shop_id         TEXT PRIMARY KEY REFERENCES shops (id),
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    url             TEXT NOT NULL,
    -- JSON array of the event types sent.
    events          TEXT NOT NULL,
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- The outbox: one row per change of a payment's status or amounts, with the
-- state it changed to, for payments of shops with an endpoint. The triggers
-- below write it in the very statement (so the transaction) that changes the
-- payment, whatever code path that is: an event is never lost between the
-- change and its delivery, and the payment path makes no write of its own.
-- (The single writer orders a payment's changes, so their seq follow them.)
CREATE TABLE payment_events (
    seq                 INTEGER PRIMARY KEY,
    payment_id          TEXT NOT NULL,
    shop_id             TEXT NOT NULL,
    status              TEXT NOT NULL,
    decline_code        TEXT,
    processor_reference TEXT,
    challenge_url       TEXT,
    amount_captured     INTEGER NOT NULL,
    amount_refunded     INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    -- Delivery: attempts made, when it was delivered, when to try next
    -- (NULL: delivered, given up or not sent).
    attempts            INTEGER NOT NULL DEFAULT 0,
    delivered_at        INTEGER,
    next_attempt_at     INTEGER,
    last_error          TEXT
) STRICT;
CREATE INDEX payment_events_due ON payment_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

-- What a trigger records: the payment's row as it now is, for shops with an
-- endpoint. (SQLite triggers fire on one operation each; both read this.)
CREATE VIEW payment_event_source AS
SELECT p.id, p.shop_id, p.status, p.decline_code, p.processor_reference, p.challenge_url,
       p.amount_captured, p.amount_refunded, p.updated_at
FROM payments p JOIN webhook_endpoints w ON w.shop_id = p.shop_id;

CREATE TRIGGER payment_events_insert AFTER INSERT ON payments
WHEN NEW.status <> 'pending' AND NEW.shop_id IS NOT NULL
BEGIN
    INSERT INTO payment_events (payment_id, shop_id, status, decline_code, processor_reference, challenge_url,
                                amount_captured, amount_refunded, created_at, next_attempt_at)
    SELECT *, updated_at FROM payment_event_source WHERE id = NEW.id;
END;

CREATE TRIGGER payment_events_update AFTER UPDATE ON payments
WHEN NEW.status <> 'pending' AND NEW.shop_id IS NOT NULL
     AND (OLD.status IS NOT NEW.status OR OLD.amount_captured <> NEW.amount_captured
          OR OLD.amount_refunded <> NEW.amount_refunded)
BEGIN
    INSERT INTO payment_events (payment_id, shop_id, status, decline_code, processor_reference, challenge_url,
                                amount_captured, amount_refunded, created_at, next_attempt_at)
    SELECT *, updated_at FROM payment_event_source WHERE id = NEW.id;
END;
