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
    secret          BYTEA NOT NULL,
    previous_secret BYTEA,
    previous_until  BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- The outbox: one row per change of a payment's status or amounts, with the
-- state it changed to, for payments of shops with an endpoint. The trigger
-- below writes it in the very statement (so the transaction) that changes the
-- payment, whatever code path that is: an event is never lost between the
-- change and its delivery, and the payment path makes no write of its own.
-- Updates of one payment are serialised by its row lock, so its events' seq
-- follow the order of its changes.
CREATE TABLE payment_events (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id          TEXT NOT NULL,
    shop_id             TEXT NOT NULL,
    status              TEXT NOT NULL,
    decline_code        TEXT,
    processor_reference TEXT,
    challenge_url       TEXT,
    amount_captured     BIGINT NOT NULL,
    amount_refunded     BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    -- Delivery: attempts made, when it was delivered, when to try next
    -- (NULL: delivered, given up or not sent).
    attempts            INTEGER NOT NULL DEFAULT 0,
    delivered_at        BIGINT,
    next_attempt_at     BIGINT,
    last_error          TEXT
);
CREATE INDEX payment_events_due ON payment_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

CREATE FUNCTION payment_events_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'pending' AND NEW.shop_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status
            OR OLD.amount_captured <> NEW.amount_captured OR OLD.amount_refunded <> NEW.amount_refunded) THEN
        INSERT INTO payment_events (payment_id, shop_id, status, decline_code, processor_reference, challenge_url,
                                    amount_captured, amount_refunded, created_at, next_attempt_at)
        SELECT NEW.id, NEW.shop_id, NEW.status, NEW.decline_code, NEW.processor_reference, NEW.challenge_url,
               NEW.amount_captured, NEW.amount_refunded, NEW.updated_at, NEW.updated_at
        FROM webhook_endpoints WHERE shop_id = NEW.shop_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER payment_events_record AFTER INSERT OR UPDATE ON payments
FOR EACH ROW EXECUTE FUNCTION payment_events_record();
