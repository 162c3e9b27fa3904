-- Which node's claim a due delivery is under (a random token per delivery
-- round; its expiry is next_attempt_at while claimed). An attempt's outcome
-- is written only where the token is still the sender's and unexpired.
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE payment_events ADD COLUMN claimed_by TEXT;
