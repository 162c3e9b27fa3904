//! The security code, held briefly (PCI DSS 3.3.1: sensitive authentication
//! data is not retained after authorization), on one node or several.
//!
//! Time is cut into epochs of [`EPOCH_MS`] (10 minutes). A code submitted in
//! epoch `e` is sealed (AES-256-GCM, bound to its session) under an *epoch
//! key* that exists only in nodes' memory, stored as ciphertext in
//! `cvc_holds`, and deleted after the authorization that uses it or at the
//! start of epoch `e + 6`, whichever comes first: between 50 and 60 minutes.
//! At that same moment every node drops the epoch key, so a copy of the
//! ciphertext in a write-ahead log, a replica or a backup can no longer be
//! read by anyone: nothing that could open it exists any more.
//!
//! Several `anshin serve` nodes share epoch keys through the database only
//! sealed: each node makes an X25519 key pair per epoch (the private key never
//! leaves its memory and is dropped with the epoch) and publishes the public
//! key in `cvc_nodes`; the node that made an epoch key seals a copy to each
//! live node's key of that epoch (X25519 with a fresh sender key, HKDF-SHA-256,
//! AES-256-GCM; aws-lc-rs). A node that must open a hold made elsewhere uses
//! its copy. Once the epoch is over, the copies are deleted and the private
//! keys that could open them are gone, so neither a database backup nor a
//! later look at a node's memory reveals a code.
//!
//! [`App::cvc_maintain`] runs every second under `anshin serve`: it publishes
//! this node's keys for the current and the next epoch, seals its epoch keys
//! to nodes that lack them, and deletes what has expired.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anshin_crypto::envelope::{AeadKey, Context};
use anshin_crypto::secret::{KeyBytes, SecretString};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::hkdf;

use crate::app::App;
use crate::clock;
use crate::db::checkout::CvcHoldRow;
use crate::error::{Error, Result};
use crate::ids::CheckoutSessionId;

/// Length of an epoch.
pub const EPOCH_MS: i64 = 10 * 60 * 1000;
/// Epochs a hold lives into: a code held in epoch `e` goes at the start of `e + 6`.
pub const EPOCHS_HELD: i64 = 6;
/// Longest a security code is held: under an hour, whatever happens.
pub const MAX_HOLD_MS: i64 = EPOCHS_HELD * EPOCH_MS;
/// A node unseen for this long is not sealed to.
const NODE_TTL_MS: i64 = 120_000;
/// How long opening a hold made on another node waits for its key copy.
const KEY_WAIT: Duration = Duration::from_secs(3);

fn epoch_of(ms: i64) -> i64 {
    ms.div_euclid(EPOCH_MS)
}

/// The first epoch whose holds may still be alive at `now`.
fn first_live_epoch(now: i64) -> i64 {
    epoch_of(now) - EPOCHS_HELD + 1
}

fn crypto_failed() -> Error {
    Error::internal(anshin_crypto::CryptoError::Random)
}

/// This node's keys, in memory only.
#[derive(Default)]
struct Keys {
    /// X25519 private keys by epoch (this node's).
    node: HashMap<i64, PrivateKey>,
    /// Epoch keys by (epoch, creator node).
    epoch: HashMap<(i64, String), KeyBytes>,
}

/// The held security codes' keys on this node.
#[derive(Default)]
pub struct CvcHolds {
    node_id: OnceLock<String>,
    keys: Mutex<Keys>,
}

fn wrap_key(shared: &[u8], info: &[u8]) -> Result<KeyBytes> {
    let mut out = [0u8; 32];
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"anshin cvc epoch key v1")
        .extract(shared)
        .expand(&[info], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| crypto_failed())?;
    let key = KeyBytes::from_slice(&out)?;
    zeroize::Zeroize::zeroize(&mut out);
    Ok(key)
}

fn copy_context(epoch: i64, creator: &str, node: &str) -> Vec<u8> {
    format!("{epoch}\0{creator}\0{node}").into_bytes()
}

/// Seals `key` to a node's public key: sender public key ‖ AES-GCM blob.
fn seal_to(public: &[u8], key: &KeyBytes, info: &[u8]) -> Result<Vec<u8>> {
    let sender = PrivateKey::generate(&X25519).map_err(|_| crypto_failed())?;
    let sender_public = sender.compute_public_key().map_err(|_| crypto_failed())?;
    let wrapping = agreement::agree(
        &sender,
        UnparsedPublicKey::new(&X25519, public),
        crypto_failed(),
        |shared| wrap_key(shared, info),
    )?;
    let blob = AeadKey::new(&wrapping)?.wrap(&Context::new("cvc-epoch-key").part(info), key)?;
    let mut out = sender_public.as_ref().to_vec();
    out.extend_from_slice(&blob);
    Ok(out)
}

fn open_from(private: &PrivateKey, sealed: &[u8], info: &[u8]) -> Result<KeyBytes> {
    if sealed.len() < 32 {
        return Err(Error::internal(crate::db::StoreError::Corrupt(
            "sealed epoch key",
        )));
    }
    let (sender, blob) = sealed.split_at(32);
    let wrapping = agreement::agree(
        private,
        UnparsedPublicKey::new(&X25519, sender),
        crypto_failed(),
        |shared| wrap_key(shared, info),
    )?;
    Ok(AeadKey::new(&wrapping)?.unwrap_key(&Context::new("cvc-epoch-key").part(info), blob)?)
}

fn hold_context(session: &CheckoutSessionId, epoch: i64, creator: &str) -> Context {
    Context::new("cvc-hold")
        .part(session.as_str().as_bytes())
        .number(epoch.unsigned_abs())
        .part(creator.as_bytes())
}

impl CvcHolds {
    /// This node's id for the life of the process.
    fn node_id(&self) -> Result<&str> {
        if self.node_id.get().is_none() {
            let id = anshin_crypto::token::random_token("node")?;
            let _ = self.node_id.set(id);
        }
        self.node_id.get().map(String::as_str).ok_or_else(crypto_failed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's public key for `epoch`, made if it has none yet.
    fn node_public(&self, epoch: i64) -> Result<Vec<u8>> {
        let mut keys = self.lock();
        let private = match keys.node.entry(epoch) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(PrivateKey::generate(&X25519).map_err(|_| crypto_failed())?)
            }
        };
        Ok(private
            .compute_public_key()
            .map_err(|_| crypto_failed())?
            .as_ref()
            .to_vec())
    }

    /// Forgets every key of epochs before `first_live`.
    fn drop_before(&self, first_live: i64) {
        let mut keys = self.lock();
        keys.node.retain(|epoch, _| *epoch >= first_live);
        keys.epoch.retain(|(epoch, _), _| *epoch >= first_live);
    }
}

impl App {
    /// Publishes this node's keys for the current and next epochs, seals
    /// this node's epoch keys to live nodes lacking a copy, and deletes
    /// expired holds, copies and keys (here and in the database).
    pub async fn cvc_maintain(&self) -> Result<()> {
        let holds = &self.checkout.cvc;
        let node = holds.node_id()?.to_owned();
        let now = clock::now_ms();
        let current = epoch_of(now);
        for epoch in [current, current + 1] {
            self.store
                .cvc_node_put(&node, epoch, holds.node_public(epoch)?, now)
                .await?;
        }
        let own: Vec<(i64, KeyBytes)> = holds
            .lock()
            .epoch
            .iter()
            .filter(|((_, creator), _)| *creator == node)
            .map(|((epoch, _), key)| (*epoch, key.clone()))
            .collect();
        for (epoch, key) in own {
            self.distribute(epoch, &node, &key, now).await?;
        }
        let first_live = first_live_epoch(now);
        holds.drop_before(first_live);
        self.store.cvc_expire(now, first_live, now - NODE_TTL_MS).await?;
        Ok(())
    }

    /// Seals the epoch key `(epoch, node)` to every live node without a copy.
    async fn distribute(&self, epoch: i64, node: &str, key: &KeyBytes, now: i64) -> Result<()> {
        let have = self.store.cvc_key_holders(epoch, node).await?;
        for (peer, public) in self.store.cvc_nodes(epoch, now - NODE_TTL_MS).await? {
            if peer == node || have.contains(&peer) {
                continue;
            }
            let sealed = seal_to(&public, key, &copy_context(epoch, node, &peer))?;
            self.store.cvc_key_put(epoch, node, &peer, sealed).await?;
        }
        Ok(())
    }

    /// Holds a session's security code for its authorization.
    pub(crate) async fn cvc_hold(
        &self,
        session: &CheckoutSessionId,
        cvc: &SecretString,
        now: i64,
    ) -> Result<()> {
        let holds = &self.checkout.cvc;
        let node = holds.node_id()?.to_owned();
        let epoch = epoch_of(now);
        let (key, new) = {
            let mut keys = holds.lock();
            match keys.epoch.get(&(epoch, node.clone())) {
                Some(key) => (key.clone(), false),
                None => {
                    let key = KeyBytes::generate()?;
                    keys.epoch.insert((epoch, node.clone()), key.clone());
                    (key, true)
                }
            }
        };
        if new {
            // Other nodes get their copies before any hold under it exists.
            self.store
                .cvc_node_put(&node, epoch, holds.node_public(epoch)?, now)
                .await?;
            self.distribute(epoch, &node, &key, now).await?;
        }
        let sealed =
            AeadKey::new(&key)?.seal(&hold_context(session, epoch, &node), cvc.expose().as_bytes())?;
        self.store
            .cvc_hold_put(CvcHoldRow {
                session_id: session.clone(),
                epoch,
                creator: node,
                sealed,
                expires_at: (epoch + EPOCHS_HELD) * EPOCH_MS,
            })
            .await?;
        Ok(())
    }

    /// The session's held code, if one is held and not expired. A hold made
    /// on another node is opened with this node's copy of its epoch key,
    /// waiting a little for the copy if the maker has not sealed it yet.
    pub(crate) async fn cvc_peek(&self, session: &CheckoutSessionId) -> Result<Option<SecretString>> {
        let Some(hold) = self.store.cvc_hold(session).await? else {
            return Ok(None);
        };
        let now = clock::now_ms();
        if hold.expires_at <= now {
            return Ok(None);
        }
        let holds = &self.checkout.cvc;
        let node = holds.node_id()?.to_owned();
        let slot = (hold.epoch, hold.creator.clone());
        let mut key = holds.lock().epoch.get(&slot).cloned();
        let deadline = tokio::time::Instant::now() + KEY_WAIT;
        while key.is_none() {
            // Make sure the maker can seal to us, then look for our copy.
            self.store
                .cvc_node_put(&node, hold.epoch, holds.node_public(hold.epoch)?, now)
                .await?;
            if let Some(sealed) = self.store.cvc_key(hold.epoch, &hold.creator, &node).await? {
                let opened = {
                    let keys = holds.lock();
                    let private = keys.node.get(&hold.epoch).ok_or_else(crypto_failed)?;
                    open_from(private, &sealed, &copy_context(hold.epoch, &hold.creator, &node))?
                };
                holds.lock().epoch.insert(slot.clone(), opened.clone());
                key = Some(opened);
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    epoch = hold.epoch,
                    "no copy of a security-code epoch key reached this node in time"
                );
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(key) = key else { return Ok(None) };
        let clear =
            AeadKey::new(&key)?.open(&hold_context(session, hold.epoch, &hold.creator), &hold.sealed)?;
        Ok(Some(clear.into_secret_string()?))
    }

    /// Deletes a session's held code (after the authorization that used it).
    pub(crate) async fn cvc_forget(&self, session: &CheckoutSessionId) -> Result<()> {
        Ok(self.store.cvc_hold_delete(session).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_end_within_the_hour() {
        for offset in [0, 1, EPOCH_MS - 1] {
            let made = 1_796_000_000_000 - 1_796_000_000_000 % EPOCH_MS + offset;
            let expires = (epoch_of(made) + EPOCHS_HELD) * EPOCH_MS;
            assert!(expires - made <= 60 * 60 * 1000 && expires - made > 50 * 60 * 1000 - EPOCH_MS);
            // Keys of the hold's epoch are still live until it expires, and not after.
            assert!(epoch_of(made) >= first_live_epoch(expires - 1));
            assert!(epoch_of(made) < first_live_epoch(expires));
        }
    }

    #[test]
    fn epoch_keys_open_only_for_their_node_and_place() {
        let node = PrivateKey::generate(&X25519).expect("key");
        let public = node.compute_public_key().expect("public").as_ref().to_vec();
        let key = KeyBytes::generate().expect("key");
        let info = copy_context(7, "node_a", "node_b");
        let sealed = seal_to(&public, &key, &info).expect("seal");
        let opened = open_from(&node, &sealed, &info).expect("open");
        assert_eq!(opened.expose(), key.expose());
        assert!(open_from(&node, &sealed, &copy_context(8, "node_a", "node_b")).is_err());
        let stranger = PrivateKey::generate(&X25519).expect("key");
        assert!(open_from(&stranger, &sealed, &info).is_err());
    }
}
