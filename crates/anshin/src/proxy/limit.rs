//! Per-client rate limits of the shopper-facing checkout routes, which take
//! no API key (the session id is the capability): token buckets per client
//! IP address, in memory. Card submissions have a tight bucket of their own,
//! since card testing (trying stolen numbers against a checkout) is the abuse
//! to stop; page loads and status polls a looser one.
//!
//! Each node keeps its own buckets, so behind a load balancer the limit is
//! per node; that bounds abuse by a small factor and needs no shared state.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// Most tracked clients before idle buckets are dropped.
const MAX_CLIENTS: usize = 100_000;

/// A token bucket per client.
pub struct Bucket {
    capacity: f64,
    per_second: f64,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Bucket {
    /// `capacity` requests at once, refilled at `per_second`.
    pub fn new(capacity: u32, per_second: f64) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_second,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`, or answers 429 `rate_limited`.
    pub fn take(&self, client: Option<IpAddr>, now: Instant) -> Result<()> {
        // In-process calls have no address; they share one bucket.
        let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            let (capacity, rate) = (self.capacity, self.per_second);
            clients
                .retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < capacity);
        }
        let (tokens, at) = clients.entry(client).or_insert((self.capacity, now));
        let refilled = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.capacity);
        *at = now;
        if refilled < 1.0 {
            *tokens = refilled;
            let wait = ((1.0 - refilled) / self.per_second).ceil().max(1.0) as u64;
            return Err(Error::new(
                ErrorKind::TooManyRequests,
                "rate_limited",
                "too many requests from this address; wait and try again",
            )
            .with_retry_after(wait));
        }
        *tokens = refilled - 1.0;
        Ok(())
    }
}

/// The checkout's buckets.
pub struct Limits {
    /// Page loads and status polls: bursts of 120, 4 a second.
    pub requests: Bucket,
    /// Card submissions: bursts of 10, then one every 6 seconds.
    pub cards: Bucket,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: Bucket::new(120, 4.0),
            cards: Bucket::new(10, 1.0 / 6.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_capacity_and_refills() {
        let bucket = Bucket::new(3, 1.0);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let other: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Instant::now();
        for _ in 0..3 {
            bucket.take(Some(ip), t0).expect("within capacity");
        }
        let refused = bucket.take(Some(ip), t0).expect_err("over capacity");
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.retry_after(), Some(1));
        bucket.take(Some(other), t0).expect("other clients unaffected");
        bucket
            .take(Some(ip), t0 + Duration::from_millis(1100))
            .expect("refilled");
    }
}
