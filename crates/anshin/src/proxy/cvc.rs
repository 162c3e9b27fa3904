//! The security code, held briefly (PCI DSS 3.3.1: sensitive authentication
//! data is not retained after authorization).
//!
//! A hold lives only in this node's memory, zeroized when it is taken for the
//! authorization that uses it, and dropped after [`MAX_HOLD_MS`] at the latest.
//! Nothing about it is written to the database, a log or a backup.

use std::collections::HashMap;
use std::sync::Mutex;

use anshin_crypto::secret::SecretString;

use crate::ids::CheckoutSessionId;

/// Longest a security code is held: under an hour, whatever happens.
pub const MAX_HOLD_MS: i64 = 50 * 60 * 1000;

/// Security codes held for one authorization each, by checkout session.
#[derive(Default)]
pub struct CvcHolds {
    held: Mutex<HashMap<CheckoutSessionId, (SecretString, i64)>>,
}

impl CvcHolds {
    /// Holds `cvc` for the session's authorization until `now + MAX_HOLD_MS`.
    pub fn hold(&self, session: &CheckoutSessionId, cvc: SecretString, now: i64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, (_, until)| *until > now);
        held.insert(session.clone(), (cvc, now.saturating_add(MAX_HOLD_MS)));
    }

    /// The held code, if any and not expired at `now`, left in place (a
    /// retried authorization needs it again).
    pub fn peek(&self, session: &CheckoutSessionId, now: i64) -> Option<SecretString> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(session)
            .filter(|(_, until)| *until > now)
            .map(|(cvc, _)| cvc.clone())
    }

    /// Forgets the session's code (after the authorization that used it).
    pub fn forget(&self, session: &CheckoutSessionId) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(session);
    }

    /// Drops every code past its time.
    pub fn expire(&self, now: i64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, (_, until)| *until > now);
    }
}
