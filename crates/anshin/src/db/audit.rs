//! Storage of the audit log: entries, the customers they touched (as keyed
//! hashes), the tree's stored node hashes and its signed head.
//!
//! An entry is durable once [`Store::audit_append`] returns. Its place in the log
//! (`idx`) is given by the database: on SQLite when it is written to the log's
//! file (one writer), or, for an entry a write left in the vault file's outbox,
//! when [`Store::audit_sequence`] moves it there; on PostgreSQL by
//! [`Store::audit_sequence`], which numbers committed entries consecutively
//! under an advisory lock. [`Store::audit_integrate`] then moves
//! the tree head forward, compare-and-swap on the old size, so two integrators
//! can never both extend the same head.

use anshin_crypto::merkle::Hash;

use super::{Store, StoreError};

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// When the event happened (ms since the epoch).
    pub time_ms: i64,
    /// The tenant it concerns.
    pub tenant_id: Option<String>,
    /// Who did it (absent for unauthenticated requests).
    pub principal_id: Option<String>,
    /// Event type, such as `card.reveal`.
    pub kind: &'static str,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// RFC 9162 leaf hash of `entry`.
    pub leaf_hash: Hash,
    /// The entry's bytes as the tree hashes them.
    pub entry: Vec<u8>,
    /// Keyed hashes of the customers it touched.
    pub subjects: Vec<[u8; 32]>,
}

/// Builds the entry that records a write from what the write decided (such as
/// the token a tokenization returns), so the store can append it in the same
/// transaction as the write: both happen or neither does.
/// It may be called more than once (a backend may prepare the entry for the
/// likely outcome before it knows the actual one); only one entry is appended.
pub type EntryFor<T> = Box<dyn Fn(&T) -> Result<NewAuditEntry, String> + Send + Sync>;

/// The integrated tree.
#[derive(Debug, Clone)]
pub struct AuditHead {
    /// Number of leaves in the tree.
    pub size: u64,
    /// Its right edge ([`anshin_crypto::merkle::Frontier`] nodes).
    pub frontier: Vec<Hash>,
    /// The latest signed checkpoint (a C2SP signed note).
    pub checkpoint: String,
    /// When the head last moved or was re-signed.
    pub updated_at: i64,
}

/// A move of the head from `old_size` to `head.size`.
#[derive(Debug, Clone)]
pub struct AuditIntegration {
    /// The size the head must still have.
    pub old_size: u64,
    /// The new head.
    pub head: AuditHead,
    /// Completed subtree hashes at tree levels 8, 16, … as (level, index, hash).
    pub nodes: Vec<(u8, u64, Hash)>,
    /// Keep this checkpoint for later consistency checks too.
    pub archive: bool,
}

/// An entry read back, with its place in the log once it has one.
#[derive(Debug, Clone)]
pub struct AuditEntryRow {
    /// Position in the log; always set in a listing, which pages by it.
    pub idx: Option<u64>,
    /// The entry's bytes.
    pub entry: Vec<u8>,
}

/// Which entries to list. Every bound is optional except the limit.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's entries.
    pub tenant_id: Option<String>,
    /// Only this principal's.
    pub principal_id: Option<String>,
    /// Only entries of this event type.
    pub kind: Option<&'static str>,
    /// Only entries that touched this customer (keyed hash).
    pub subject: Option<[u8; 32]>,
    /// From this time (ms, inclusive).
    pub since_ms: Option<i64>,
    /// Entries after this log index (exclusive), from [`AuditPage::next`].
    /// Only entries that have an index are listed.
    pub after: Option<i64>,
    /// Most entries to return.
    pub limit: u32,
}

/// A page of entries, oldest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntryRow>,
    /// Cursor for the next page, when the page was full.
    pub next: Option<i64>,
}

/// Reads a stored hash column.
pub(super) fn hash_from(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash length"))
}

/// Splits a stored frontier into hashes.
pub(super) fn frontier_from(bytes: &[u8]) -> Result<Vec<Hash>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt("audit frontier length"));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

pub(super) fn u64_from(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt("negative audit index"))
}

pub(super) fn i64_from(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt("audit index beyond i64"))
}

impl Store {
    /// Appends entries durably, in one transaction.
    pub async fn audit_append(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        dispatch!(self.audit_append(entries))
    }

    /// Gives up to `limit` committed, unnumbered entries their places in the log;
    /// returns how many.
    pub async fn audit_sequence(&self, limit: u32) -> Result<u64, StoreError> {
        dispatch!(self.audit_sequence(limit))
    }

    /// Number of entries that have a place in the log (`max(idx) + 1`).
    pub async fn audit_sequenced(&self) -> Result<u64, StoreError> {
        dispatch!(self.audit_sequenced())
    }

    /// The integrated tree's head, if the log was ever integrated.
    pub async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        dispatch!(self.audit_head())
    }

    /// Moves the head; false (and nothing written) if it is no longer at
    /// `old_size` because another integrator moved it.
    pub async fn audit_integrate(&self, integration: AuditIntegration) -> Result<bool, StoreError> {
        dispatch!(self.audit_integrate(integration))
    }

    /// Stored hashes at tree `level` (0 = leaf hashes, else a multiple of 8) for
    /// indexes `start..end`; an error unless all of them exist.
    pub async fn audit_hashes(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        dispatch!(self.audit_hashes(level, start, end))
    }

    /// The entries at indexes `start..end`; an error unless all of them exist.
    pub async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        dispatch!(self.audit_entries(start, end))
    }

    /// A page of entries matching `filter`, oldest first.
    pub async fn audit_find(&self, filter: AuditFilter) -> Result<AuditPage, StoreError> {
        dispatch!(self.audit_find(filter))
    }

    /// Successful entries of `kind` by `principal` since `since_ms`.
    pub async fn audit_count(
        &self,
        principal: &str,
        kind: &'static str,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        dispatch!(self.audit_count(principal, kind, since_ms))
    }

    /// A kept checkpoint of exactly this size.
    pub async fn audit_checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        dispatch!(self.audit_checkpoint(size))
    }
}
