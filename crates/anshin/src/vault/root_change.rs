//! Changing the root of trust (PCI DSS 3.6.1.2, 3.7.5: replacing a key that
//! is suspected of compromise, or moving it into an HSM or among custodians).
//!
//! A manual key operation under dual control like the others: one global
//! operator requests `change_root` with its target (`file`, `shares:K/N`,
//! `pkcs11`), another approves, and within a day of the approval
//! `anshin keys change-root --request ID`, run with every node stopped,
//! carries it out once:
//!
//! 1. the next root is made beside the current one ([`NewRoot::stage`]);
//! 2. everything the root wraps (tenant keys, the root check, installation
//!    keys: never a record) is re-wrapped under it and staged in the database
//!    as one `meta` value; the custodians' new shares are shown;
//! 3. the next root is put in force by one atomic rename or unlink
//!    ([`super::root::commit_staged`]);
//! 4. the staged values replace the old ones in one transaction, which also
//!    marks the request executed ([`apply`]); the old root is destroyed.
//!
//! A crash before 3 leaves the current root in force and a staged change that
//! stops servers from starting until the command is run again or cancelled;
//! a crash between 3 and 4 is finished by the next start, which finds the
//! next root in force and the database not yet following
//! ([`super::keys::Keyring::verify`]).
//!
//! [`NewRoot::stage`]: super::root::NewRoot::stage

use data_encoding::HEXLOWER;
use serde::{Deserialize, Serialize};

use crate::access::{Action, Actor};
use crate::app::App;
use crate::audit::{Event, EventKind};
use crate::clock;
use crate::db::keys::{KeyOperation, KeyRequestRow, Rewrapped, RootChange, RootChangeRefused, RootTarget};
use crate::db::{KeyPurpose, Store};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{KeyRequestId, TenantId, parse_or_404};
use crate::vault::root::RootKey;
use crate::vault::rotation::REQUEST_TTL_MS;

/// The `meta` key of a staged change.
pub const STAGED_META: &str = "root_change_staged";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Staged {
    request: String,
    tenant_keys: Vec<StagedKey>,
    meta: Vec<StagedMeta>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StagedKey {
    tenant: String,
    purpose: String,
    version: u32,
    old: String,
    new: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StagedMeta {
    key: String,
    old: String,
    new: String,
}

fn corrupt() -> Error {
    Error::internal(crate::db::StoreError::Corrupt("staged root change"))
}

fn hex(text: &str) -> Result<Vec<u8>> {
    HEXLOWER.decode(text.as_bytes()).map_err(|_| corrupt())
}

/// The staged change as stored (wrapped keys only: nothing in it opens
/// without one of the two roots).
fn encode(change: &RootChange) -> Result<Vec<u8>> {
    let staged = Staged {
        request: change.request.to_string(),
        tenant_keys: change
            .tenant_keys
            .iter()
            .map(|k| StagedKey {
                tenant: k.key.0.to_string(),
                purpose: k.key.1.as_str().to_owned(),
                version: k.key.2,
                old: HEXLOWER.encode(&k.old),
                new: HEXLOWER.encode(&k.new),
            })
            .collect(),
        meta: change
            .meta
            .iter()
            .map(|m| StagedMeta {
                key: m.key.clone(),
                old: HEXLOWER.encode(&m.old),
                new: HEXLOWER.encode(&m.new),
            })
            .collect(),
    };
    serde_json::to_vec(&staged).map_err(Error::internal)
}

/// Reads a staged change back.
pub fn decode(bytes: &[u8]) -> Result<RootChange> {
    let staged: Staged = serde_json::from_slice(bytes).map_err(|_| corrupt())?;
    let tenant_keys = staged
        .tenant_keys
        .into_iter()
        .map(|k| {
            let tenant = TenantId::parse(&k.tenant).ok_or_else(corrupt)?;
            let purpose = KeyPurpose::parse(&k.purpose).map_err(Error::internal)?;
            Ok(Rewrapped {
                key: (tenant, purpose, k.version),
                old: hex(&k.old)?,
                new: hex(&k.new)?,
            })
        })
        .collect::<Result<_>>()?;
    let meta = staged
        .meta
        .into_iter()
        .map(|m| {
            Ok(Rewrapped {
                old: hex(&m.old)?,
                new: hex(&m.new)?,
                key: m.key,
            })
        })
        .collect::<Result<_>>()?;
    Ok(RootChange {
        request: KeyRequestId::parse(&staged.request).ok_or_else(corrupt)?,
        tenant_keys,
        meta,
    })
}

/// 503 `root_change_pending`: servers do not start beside a change under way.
pub fn pending(request: &KeyRequestId) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "root_change_pending",
        format!(
            "a change of the root of trust (key request {request}) was staged and not finished: run \
             `anshin keys change-root --request {request}` again, or `anshin keys change-root --cancel` / \
             ルート鍵の変更が途中で止まっています。同じコマンドを再実行するか --cancel で取り消してください"
        ),
    )
}

/// Applies a staged change: every value re-wrapped, the request executed.
pub async fn apply(store: &Store, change: RootChange) -> Result<()> {
    match store
        .apply_root_change(change, STAGED_META, clock::now_ms())
        .await?
    {
        Ok(()) => Ok(()),
        Err(RootChangeRefused::AlreadyExecuted) => Err(Error::new(
            ErrorKind::Conflict,
            "request_closed",
            "this change of the root of trust was carried out already; make a new request",
        )),
        Err(RootChangeRefused::StateChanged) => Err(Error::new(
            ErrorKind::Conflict,
            "root_change_conflict",
            "the key state changed while the root of trust was being changed (was a server running?): \
             stop every node, cancel with `anshin keys change-root --cancel` and run the request again",
        )),
    }
}

impl App {
    /// The approved, unexecuted `change_root` request `id`, checked against
    /// the root about to be made: the approver approved exactly `target`.
    pub async fn approved_root_change(
        &self,
        actor: &Actor,
        id: &str,
        target: RootTarget,
    ) -> Result<KeyRequestRow> {
        actor.require(Action::ManageKeys)?;
        let id = parse_or_404(KeyRequestId::parse, id, "key request")?;
        let row = self
            .store
            .key_request(&id)
            .await?
            .filter(|r| r.tenant_id.is_none() && actor.tenant_id.is_none())
            .ok_or_else(|| Error::not_found("key request"))?;
        let KeyOperation::ChangeRoot(approved) = row.operation else {
            return Err(Error::not_found("key request"));
        };
        let closed = |message: &'static str| Error::new(ErrorKind::Conflict, "request_closed", message);
        match (row.outcome.as_deref(), row.decided_at, row.executed_at) {
            (_, _, Some(_)) => return Err(closed("this request was carried out already; make a new one")),
            (Some("approved"), Some(at), None) if at + REQUEST_TTL_MS > clock::now_ms() => {}
            (Some("approved"), _, None) => {
                return Err(closed(
                    "the approval is more than a day old; make a new request and have it approved again",
                ));
            }
            (Some(_), _, None) => return Err(closed("this request was rejected")),
            (None, _, None) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "request_not_approved",
                    format!(
                        "key request {id} waits for a second operator: `ANSHIN_API_KEY=<their key> anshin keys approve {id}`"
                    ),
                ));
            }
        }
        if approved != target {
            return Err(Error::new(
                ErrorKind::Conflict,
                "target_mismatch",
                format!(
                    "the request approved `{}`, these options make `{}`: run the command with the approved options",
                    approved.to_text(),
                    target.to_text()
                ),
            ));
        }
        Ok(row)
    }

    /// Step 2: re-wraps everything under `next` and stages it.
    pub async fn stage_root_change(&self, request: &KeyRequestRow, next: &RootKey) -> Result<RootChange> {
        let change = self
            .keyring
            .rewrap_under(&self.store, next, request.id.clone())
            .await?;
        self.store.meta_put(STAGED_META, Some(encode(&change)?)).await?;
        Ok(change)
    }

    /// Step 4, once the next root is in force: applies the staged change and
    /// records who carried it out.
    pub async fn finish_root_change(&self, actor: &Actor, change: RootChange) -> Result<()> {
        self.audited(actor, EventKind::RootChange, async |event| {
            event.resource(&change.request);
            apply(&self.store, change.clone()).await
        })
        .await
    }

    /// Cancels a staged change whose next root was never put in force.
    /// Returns the request it was for, if a change was staged.
    pub async fn cancel_root_change(&self, actor: &Actor) -> Result<Option<KeyRequestId>> {
        actor.require(Action::ManageKeys)?;
        let Some(bytes) = self.store.meta(STAGED_META).await? else {
            return Ok(None);
        };
        let request = decode(&bytes)?.request;
        let mut event = Event::new(EventKind::RootChangeCancel);
        event.resource(&request);
        self.record_now(actor, &mut event).await?;
        self.store.meta_put(STAGED_META, None).await?;
        Ok(Some(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_change_round_trips_and_garbage_is_refused() {
        let change = RootChange {
            request: KeyRequestId::generate().expect("id"),
            tenant_keys: vec![Rewrapped {
                key: (TenantId::generate().expect("id"), KeyPurpose::Kek, 3),
                old: vec![1, 2, 3],
                new: vec![4, 5],
            }],
            meta: vec![Rewrapped {
                key: "root_key_check".into(),
                old: vec![9],
                new: vec![8, 7],
            }],
        };
        let back = decode(&encode(&change).expect("encode")).expect("decode");
        assert_eq!(back.request, change.request);
        assert_eq!(back.tenant_keys[0].key, change.tenant_keys[0].key);
        assert_eq!(back.tenant_keys[0].new, vec![4, 5]);
        assert_eq!(back.meta[0].key, "root_key_check");
        assert_eq!(back.meta[0].old, vec![9]);
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"request":"x","tenant_keys":[],"meta":[]}"#,
        ] {
            assert!(decode(bad).is_err());
        }
    }
}
