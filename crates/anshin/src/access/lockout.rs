//! Lockout of sources that fail authentication again and again (PCI DSS v4.0
//! 8.3.4: lock out after at most 10 attempts, for at least 30 minutes).
//!
//! [`THRESHOLD`] missing or refused keys from one source within [`WINDOW_MS`]
//! lock the source out for [`LOCKOUT_MS`]: every request from it is then
//! answered 429 `too_many_failures` with `Retry-After`, before its key is even
//! looked at. Missing keys count too, or keyless requests could fill the audit
//! log (each is an `auth.failure` entry) without ever being stopped.
//! A source is an IPv4 address or an IPv6 /64 (one host usually holds a whole
//! /64, so counting single IPv6 addresses would count nothing).
//!
//! The counters live in the database, so all `anshin serve` nodes share them,
//! and are only written when an authentication fails. The check on every
//! request reads an in-memory copy of the lockouts in force: this node updates
//! it at once when it starts or meets a lockout, and [`App::refresh_lockouts`]
//! (every [`REFRESH`] in `anshin serve`) picks up those of other nodes. A
//! successful request never waits on the database for this.
//!
//! The start of a lockout is recorded in the audit log (`auth.lockout`, with the
//! origin); the 429 answers during it are counted in the
//! `anshin_auth_locked_out_total` metric, not logged one by one, so a locked-out
//! client cannot flood the audit log.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::RwLock;
use std::time::Duration;

use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::credentials::FailurePolicy;
use crate::error::{Error, ErrorKind, Result};

/// Failed authentications from one source that start a lockout.
pub const THRESHOLD: u32 = 10;
/// The window the failures are counted in.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// How long a lockout lasts.
pub const LOCKOUT_MS: i64 = 30 * 60 * 1000;
/// How often `anshin serve` reloads the lockouts other nodes started.
pub const REFRESH: Duration = Duration::from_secs(2);
/// Most lockouts held in memory; beyond it the oldest-ending are dropped (they
/// still hold in the database and come back on the next refresh that has room).
const MAX_LOCKED: usize = 100_000;

/// Where failed authentications are counted: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address (also an IPv4 client on an IPv6 socket).
    V4(Ipv4Addr),
    /// An IPv6 /64, host bits zero.
    V6(Ipv6Addr),
}

impl Source {
    /// The source a client address belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        }
    }

    /// Reads the stored form back.
    pub fn parse(text: &str) -> Option<Self> {
        match text.strip_suffix("/64") {
            Some(net) => {
                let v6: Ipv6Addr = net.parse().ok()?;
                let source = Self::of(IpAddr::V6(v6));
                (source == Self::V6(v6)).then_some(source)
            }
            None => text.parse::<Ipv4Addr>().ok().map(Self::V4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(v4) => write!(f, "{v4}"),
            Self::V6(net) => write!(f, "{net}/64"),
        }
    }
}

/// The lockouts in force, as this node knows them: source → end (ms).
#[derive(Default)]
pub struct Lockouts {
    locked: RwLock<HashMap<Source, i64>>,
}

impl Lockouts {
    /// The end of the source's lockout, if it is locked out at `now`.
    pub fn until(&self, source: Source, now: i64) -> Option<i64> {
        let map = self.locked.read().ok()?;
        if map.is_empty() {
            return None;
        }
        map.get(&source).copied().filter(|until| *until > now)
    }

    fn insert(&self, source: Source, until: i64) {
        if let Ok(mut map) = self.locked.write() {
            if map.len() >= MAX_LOCKED {
                let now = clock::now_ms();
                map.retain(|_, end| *end > now);
            }
            if map.len() < MAX_LOCKED {
                let end = map.entry(source).or_insert(until);
                *end = (*end).max(until);
            }
        }
    }

    fn replace(&self, mut entries: Vec<(Source, i64)>) {
        if entries.len() > MAX_LOCKED {
            entries.sort_by_key(|(_, until)| std::cmp::Reverse(*until));
            entries.truncate(MAX_LOCKED);
        }
        if let Ok(mut map) = self.locked.write() {
            *map = entries.into_iter().collect();
        }
    }
}

/// 429 `too_many_failures` with the seconds left as `Retry-After`.
fn locked_out(until: i64, now: i64) -> Error {
    let seconds = u64::try_from((until - now + 999) / 1000).unwrap_or(1).max(1);
    Error::new(
        ErrorKind::TooManyRequests,
        "too_many_failures",
        format!(
            "too many failed authentications from this address: it is locked out for {} more minutes; \
             check the API key it sends",
            seconds.div_ceil(60)
        ),
    )
    .with_retry_after(seconds)
}

impl App {
    /// Refuses a request from a locked-out source with 429, without touching
    /// the database. Requests without a client address are not checked.
    pub fn check_lockout(&self, origin: Option<IpAddr>) -> Result<()> {
        let Some(ip) = origin else {
            return Ok(());
        };
        let now = clock::now_ms();
        match self.lockouts.until(Source::of(ip), now) {
            Some(until) => {
                metrics::counter!("anshin_auth_locked_out_total").increment(1);
                Err(locked_out(until, now))
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication from `origin`; at the threshold, locks the
    /// source out and records the start of the lockout in the audit log. The
    /// answer to the request is an error either way, so a storage or log
    /// failure here is only reported.
    pub(crate) async fn count_auth_failure(&self, origin: IpAddr) {
        let source = Source::of(origin);
        let now = clock::now_ms();
        let policy = FailurePolicy {
            now,
            window_start: now - WINDOW_MS,
            threshold: THRESHOLD,
            lock_until: now + LOCKOUT_MS,
        };
        let outcome = match self.store.record_auth_failure(&source.to_string(), policy).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(error = %err, "could not count a failed authentication");
                return;
            }
        };
        if let Some(until) = outcome.locked_until {
            self.lockouts.insert(source, until);
        }
        if outcome.started {
            metrics::counter!("anshin_auth_lockouts_total").increment(1);
            tracing::warn!(%source, failures = outcome.failures, "source locked out after failed authentications");
            let err = locked_out(policy.lock_until, now);
            if let Err(log_err) = self
                .record(
                    None,
                    Some(origin),
                    &Event::new(EventKind::AuthLockout),
                    Some(&err),
                )
                .await
            {
                tracing::warn!(error = ?log_err, "could not record a lockout in the audit log");
            }
        }
    }

    /// Reloads the lockouts in force from the database, so this node also
    /// refuses sources that other nodes locked out.
    pub async fn refresh_lockouts(&self) -> Result<()> {
        let now = clock::now_ms();
        let rows = self.store.auth_lockouts(now).await?;
        let entries = rows
            .into_iter()
            .filter_map(|(source, until)| Source::parse(&source).map(|s| (s, until)))
            .collect();
        self.lockouts.replace(entries);
        Ok(())
    }

    /// Deletes failure counts that left the window and lockouts that ended.
    pub async fn prune_auth_failures(&self) -> Result<()> {
        let now = clock::now_ms();
        Ok(self.store.prune_auth_failures(now - WINDOW_MS, now).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn sources_are_v4_addresses_and_v6_slash_64s() {
        assert_eq!(Source::of(ip("203.0.113.7")).to_string(), "203.0.113.7");
        assert_eq!(
            Source::of(ip("::ffff:203.0.113.7")),
            Source::of(ip("203.0.113.7"))
        );
        let a = Source::of(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, Source::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(a, Source::of(ip("2001:db8:1:3::1")));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        for source in [a, Source::of(ip("198.51.100.1"))] {
            assert_eq!(Source::parse(&source.to_string()), Some(source));
        }
        assert_eq!(Source::parse("2001:db8:1:2::1/64"), None, "host bits set");
        assert_eq!(Source::parse("junk"), None);
    }

    #[test]
    fn lockouts_end_and_only_hold_their_source() {
        let lockouts = Lockouts::default();
        let source = Source::of(ip("203.0.113.7"));
        assert_eq!(lockouts.until(source, 0), None);
        lockouts.insert(source, 1_000);
        assert_eq!(lockouts.until(source, 999), Some(1_000));
        assert_eq!(lockouts.until(source, 1_000), None, "over at its end");
        assert_eq!(lockouts.until(Source::of(ip("203.0.113.8")), 0), None);
        lockouts.insert(source, 500);
        assert_eq!(
            lockouts.until(source, 999),
            Some(1_000),
            "an earlier end never shortens it"
        );
        lockouts.replace(Vec::new());
        assert_eq!(lockouts.until(source, 0), None);
    }

    #[test]
    fn the_answer_says_when_to_retry() {
        let err = locked_out(LOCKOUT_MS, 0);
        assert_eq!(err.code(), "too_many_failures");
        assert_eq!(err.kind().status().as_u16(), 429);
        assert_eq!(err.retry_after(), Some(1_800));
        assert!(err.message().contains("30 more minutes"), "{}", err.message());
        assert_eq!(locked_out(1, 0).retry_after(), Some(1));
    }
}
