//! The audit log itself: append, sequence, integrate, sign, serve.
//!
//! Appending is group-committed at this level, whatever the backend: requests
//! hand their entry to a batcher and wait; the batcher writes everything that
//! queued meanwhile in one transaction and then answers them all. So a 2xx
//! answer never comes before its entry is durable, and concurrent requests
//! share one commit instead of paying one each.
//!
//! Integration (Tessera's word) runs apart from the request path: it numbers
//! committed entries (PostgreSQL), hashes new leaves into the tree, stores the
//! completed subtree hashes the tlog tiles need, and signs a C2SP checkpoint of
//! the new size with the installation's Ed25519 key. `anshin serve` runs it every
//! [`INTEGRATE_INTERVAL`]; it runs on demand too.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anshin_crypto::merkle::{self, Frontier, Hash, NodeId, TILE_HEIGHT, Tile, TileKind};
use anshin_crypto::note::{Checkpoint, NoteSigner, NoteVerifier};
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use super::{Entry, EventKind};
use crate::db::audit::{AuditHead, AuditIntegration, NewAuditEntry};
use crate::db::{Store, StoreError};
use crate::error::{Error, ErrorKind, Result};

/// How often `anshin serve` integrates new entries and signs a checkpoint.
pub const INTEGRATE_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two checkpoints kept for later consistency checks.
const ARCHIVE_INTERVAL_MS: i64 = 60_000;
/// Most entries one append transaction carries.
const MAX_BATCH: usize = 2048;
/// Append transactions in flight at once.
const MAX_IN_FLIGHT: usize = 4;
/// Most leaves one integration round takes (bounds its memory and time).
const MAX_ROUND: u64 = 1 << 20;
/// Most entries one sequencing transaction numbers.
const SEQUENCE_BATCH: u32 = 10_000;
/// Name of the log's signing key in the database (wrapped by the root key).
pub(crate) const SIGNING_KEY: &str = "audit_signing_key";
/// Name of the log's identity in the database.
const ORIGIN_KEY: &str = "audit_origin";

struct Pending {
    entry: NewAuditEntry,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// The audit log of one installation.
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    signer: NoteSigner,
    origin: String,
    integrating: Mutex<()>,
    last_archive_ms: AtomicI64,
}

/// Why an append failed.
#[derive(Debug)]
pub struct AppendError(String);

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit append failed: {}", self.0)
    }
}

impl std::error::Error for AppendError {}

impl AuditLog {
    /// Opens the log over `store` with the installation's signing key and
    /// origin, and starts its batcher (on the current Tokio runtime).
    pub async fn open(store: &Store, signing_seed: &anshin_crypto::secret::KeyBytes) -> Result<Self> {
        let origin = {
            let id = crate::ids::TenantId::generate()?;
            let candidate = format!("anshin.local/audit/{}", &id.as_str()[4..]);
            let stored = store.meta_init(ORIGIN_KEY, candidate.into_bytes()).await?;
            String::from_utf8(stored).map_err(|_| Error::internal(StoreError::Corrupt("audit origin")))?
        };
        let signer = NoteSigner::from_seed(&origin, signing_seed).map_err(Error::internal)?;
        let (queue, receiver) = mpsc::channel(64 * 1024);
        tokio::spawn(batcher(store.clone(), receiver));
        Ok(Self {
            queue,
            signer,
            origin,
            integrating: Mutex::new(()),
            last_archive_ms: AtomicI64::new(0),
        })
    }

    /// The database name of the signing key, for [`crate::vault::keys::Keyring::installation_key`].
    pub fn signing_key_name() -> &'static str {
        SIGNING_KEY
    }

    /// The log's origin line (its identity in checkpoints).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key in signed-note form: `<name>+<key id>+<key>`.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The verifier.
    pub fn verifier(&self) -> &NoteVerifier {
        self.signer.verifier()
    }

    /// Appends one entry and returns once it is durable.
    pub async fn append(
        &self,
        time_ms: i64,
        kind: EventKind,
        entry: &Entry,
        subjects: Vec<[u8; 32]>,
    ) -> std::result::Result<(), AppendError> {
        self.append_all(time_ms, kind, vec![(entry, subjects)]).await
    }

    /// Appends the parts of one event together (they reach the same batches)
    /// and returns once all of them are durable.
    pub async fn append_all(
        &self,
        time_ms: i64,
        kind: EventKind,
        parts: Vec<(&Entry, Vec<[u8; 32]>)>,
    ) -> std::result::Result<(), AppendError> {
        let mut answers = Vec::with_capacity(parts.len());
        for (entry, subjects) in parts {
            let (done, answer) = oneshot::channel();
            let pending = Pending {
                entry: new_entry(time_ms, kind, entry, subjects).map_err(AppendError)?,
                done,
            };
            self.queue
                .send(pending)
                .await
                .map_err(|_| AppendError("the audit batcher has stopped".into()))?;
            answers.push(answer);
        }
        for answer in answers {
            answer
                .await
                .map_err(|_| AppendError("the audit batcher dropped the entry".into()))?
                .map_err(AppendError)?;
        }
        Ok(())
    }

    /// Gives every committed entry its place in the log, so that a listing
    /// made next sees all of them (listings page by index and skip entries
    /// without one). PostgreSQL numbers them under its advisory lock; SQLite
    /// numbers entries as it writes them to the log's file and here moves the
    /// ones tokenizations left in the vault file's outbox.
    pub async fn sequence(&self, store: &Store) -> Result<()> {
        while store.audit_sequence(SEQUENCE_BATCH).await? == u64::from(SEQUENCE_BATCH) {}
        Ok(())
    }

    /// Numbers committed entries, hashes them into the tree and signs a
    /// checkpoint of the new size. Returns the head after the round.
    pub async fn integrate(&self, store: &Store) -> Result<AuditHead> {
        let _one = self.integrating.lock().await;
        self.sequence(store).await?;
        let head = match store.audit_head().await? {
            Some(head) => head,
            None => self.empty_head()?,
        };
        let available = store.audit_sequenced().await?;
        if available <= head.size && head.updated_at != 0 {
            return Ok(head);
        }
        let end = available.min(head.size.saturating_add(MAX_ROUND));
        let leaves = store.audit_hashes(0, head.size, end).await?;
        let mut frontier = Frontier::from_parts(head.size, head.frontier.clone()).map_err(Error::internal)?;
        let mut nodes = Vec::new();
        for leaf in leaves {
            frontier.push_with(leaf, |node, hash| {
                if node.level > 0 && node.level % TILE_HEIGHT == 0 {
                    nodes.push((node.level, node.index, *hash));
                }
            });
        }
        let now = crate::clock::now_ms();
        let checkpoint = self.sign(frontier.size(), frontier.root())?;
        let archive = now - self.last_archive_ms.load(Ordering::Relaxed) >= ARCHIVE_INTERVAL_MS;
        let new_head = AuditHead {
            size: frontier.size(),
            frontier: frontier.nodes().to_vec(),
            checkpoint,
            updated_at: now,
        };
        let moved = store
            .audit_integrate(AuditIntegration {
                old_size: head.size,
                head: new_head.clone(),
                nodes,
                archive,
            })
            .await?;
        if !moved {
            // Another node integrated meanwhile: its head is as good as ours.
            return store
                .audit_head()
                .await?
                .ok_or_else(|| Error::internal(StoreError::Corrupt("audit head vanished")));
        }
        if archive {
            self.last_archive_ms.store(now, Ordering::Relaxed);
        }
        metrics::gauge!("anshin_audit_tree_size").set(new_head.size as f64);
        Ok(new_head)
    }

    fn empty_head(&self) -> Result<AuditHead> {
        Ok(AuditHead {
            size: 0,
            frontier: Vec::new(),
            checkpoint: self.sign(0, merkle::EMPTY_ROOT)?,
            updated_at: 0,
        })
    }

    fn sign(&self, size: u64, root: Hash) -> Result<String> {
        Checkpoint::new(&self.origin, size, root)
            .and_then(|c| c.sign(&self.signer))
            .map_err(Error::internal)
    }

    /// The latest signed checkpoint (integrating first if the log never was).
    pub async fn head(&self, store: &Store) -> Result<AuditHead> {
        match store.audit_head().await? {
            Some(head) => Ok(head),
            None => self.integrate(store).await,
        }
    }

    /// A tile or entry bundle of the integrated tree, by its tlog-tiles path.
    pub async fn tile(&self, store: &Store, path: &str) -> Result<(TileKind, Tile, Vec<u8>)> {
        let (kind, tile) = Tile::parse_path(path).map_err(|_| Error::not_found("tile"))?;
        let head = self.head(store).await?;
        let bytes = tile_bytes(store, head.size, kind, tile).await?;
        Ok((kind, tile, bytes))
    }

    /// The inclusion proof of entry `index` in the tree of `size` leaves (the
    /// current size when `None`).
    pub async fn inclusion_proof(
        &self,
        store: &Store,
        index: u64,
        size: Option<u64>,
    ) -> Result<(u64, Vec<Hash>)> {
        let size = self.proof_size(store, size).await?;
        if index >= size {
            return Err(Error::invalid(
                "index_out_of_range",
                "index must be below the tree size",
            ));
        }
        let proof = with_nodes(store, |fetch| merkle::inclusion_proof(index, size, fetch)).await?;
        Ok((size, proof))
    }

    /// The consistency proof from the tree of `old` leaves to that of `new`.
    pub async fn consistency_proof(
        &self,
        store: &Store,
        old: u64,
        new: Option<u64>,
    ) -> Result<(u64, Vec<Hash>)> {
        let new = self.proof_size(store, new).await?;
        if old > new {
            return Err(Error::invalid("size_out_of_range", "old must not exceed new"));
        }
        let proof = with_nodes(store, |fetch| merkle::consistency_proof(old, new, fetch)).await?;
        Ok((new, proof))
    }

    async fn proof_size(&self, store: &Store, size: Option<u64>) -> Result<u64> {
        let head = self.head(store).await?;
        match size {
            None => Ok(head.size),
            Some(size) if size <= head.size => Ok(size),
            Some(_) => Err(Error::invalid(
                "size_out_of_range",
                "size must not exceed the latest checkpoint's size",
            )),
        }
    }
}

/// An entry as the store appends it: its canonical bytes, their leaf hash and
/// the indexed columns.
pub fn new_entry(
    time_ms: i64,
    kind: EventKind,
    entry: &Entry,
    subjects: Vec<[u8; 32]>,
) -> std::result::Result<NewAuditEntry, String> {
    let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    if bytes.len() > merkle::MAX_ENTRY_LEN {
        return Err("entry too large".into());
    }
    Ok(NewAuditEntry {
        time_ms,
        tenant_id: entry.tenant.clone(),
        principal_id: entry.actor.as_ref().map(|a| a.principal.clone()),
        kind: kind.as_str(),
        outcome: if entry.code.is_none() {
            "success"
        } else {
            "failure"
        },
        leaf_hash: merkle::leaf_hash(&bytes),
        entry: bytes,
        subjects,
    })
}

/// The bytes of a tile (or its entry bundle) of the tree of `size` leaves; 404
/// for a tile that tree does not have.
pub async fn tile_bytes(store: &Store, size: u64, kind: TileKind, tile: Tile) -> Result<Vec<u8>> {
    let level = tile.level() * TILE_HEIGHT;
    let available = size >> u32::from(level);
    let start = tile.index() * u64::from(merkle::TILE_WIDTH);
    let end = start + u64::from(tile.width());
    if end > available {
        return Err(Error::not_found("tile"));
    }
    match kind {
        TileKind::Hashes => Ok(Tile::encode_data(&store.audit_hashes(level, start, end).await?)),
        TileKind::Entries => {
            merkle::encode_entry_bundle(&store.audit_entries(start, end).await?).map_err(Error::internal)
        }
    }
}

/// The batcher: takes whatever queued, appends it in one transaction, answers.
async fn batcher(store: Store, mut receiver: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let (entries, waiters): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.entry, p.done)).unzip();
            let count = entries.len();
            let outcome = store.audit_append(entries).await.map_err(|e| e.to_string());
            drop(permit);
            match &outcome {
                Ok(()) => metrics::counter!("anshin_audit_appends_total").increment(count as u64),
                Err(err) => {
                    metrics::counter!("anshin_audit_append_failures_total").increment(count as u64);
                    tracing::error!(error = %err, entries = count, "audit append failed; the requests are refused");
                }
            }
            for waiter in waiters {
                let _ = waiter.send(outcome.clone());
            }
        });
    }
}

/// Runs a proof computation twice: once to learn which subtree hashes it needs,
/// then, after fetching them from storage, to build the proof.
async fn with_nodes(
    store: &Store,
    proof: impl Fn(
        &mut dyn FnMut(NodeId) -> Result<Hash, merkle::MerkleError>,
    ) -> Result<Vec<Hash>, merkle::MerkleError>,
) -> Result<Vec<Hash>> {
    let mut wanted = Vec::new();
    proof(&mut |node| {
        wanted.push(node);
        Ok([0; 32])
    })
    .map_err(proof_error)?;
    let mut hashes = std::collections::HashMap::with_capacity(wanted.len());
    for node in wanted {
        hashes.insert(node, node_hash(store, node).await?);
    }
    proof(&mut |node| {
        hashes
            .get(&node)
            .copied()
            .ok_or(merkle::MerkleError::NodeOutOfRange)
    })
    .map_err(proof_error)
}

fn proof_error(err: merkle::MerkleError) -> Error {
    Error::new(
        ErrorKind::Invalid,
        "invalid_proof_request",
        "no such proof for these sizes",
    )
    .with_cause(err)
}

/// The hash of a perfect subtree, from the stored hashes at the tile level below it.
async fn node_hash(store: &Store, node: NodeId) -> Result<Hash> {
    let stored_level = node.level - node.level % TILE_HEIGHT;
    let shift = u32::from(node.level - stored_level);
    let start = node.index << shift;
    let hashes = store
        .audit_hashes(stored_level, start, start + (1u64 << shift))
        .await?;
    Ok(merkle::root(&hashes))
}
