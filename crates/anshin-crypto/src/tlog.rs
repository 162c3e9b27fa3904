//! Offline verification of an exported audit log: the entry bundles and hash
//! tiles of the C2SP tlog-tiles layout, checked against a signed checkpoint.
//!
//! An auditor is handed a copy of the log (a directory, an archive, a bucket)
//! and a checkpoint whose signature they have checked with
//! [`Checkpoint::open`]. [`verify_export`] says whether the copy holds exactly
//! the entries that were signed and, when it does not, which entry is the
//! first one that differs, so an investigation starts at the right row instead
//! of at "the root does not match".
//!
//! How a bad entry is located without any other signed root: the export holds
//! two independent lists of leaf hashes, the entries themselves (hashed here)
//! and the stored level-0 hash tiles. Whichever list hashes to the checkpoint's
//! root is authentic (finding another list with that root means breaking
//! SHA-256), and the other is compared with it position by position. A flipped
//! byte, a deleted, inserted or reordered entry or a cut-off tail therefore
//! shows up at its exact index as long as the tiles were left alone; and if the
//! tiles were changed but the entries were not, the changed tiles are named.
//! When neither list hashes to the root, an earlier checkpoint can still vouch
//! for a prefix, and disagreements between the two lists are reported as hints.
//! Tiles above level 0 are compared with hashes recomputed from the level below.
//!
//! No I/O: the caller passes a `read` closure that returns a file of the export
//! by its tlog-tiles path, so the same code checks a directory, a tarball or a
//! test's in-memory map.
//!
//! Threat notes: every byte read may have been written by an attacker. Nothing
//! here panics on any input; bundles are parsed with checked slicing, sizes with
//! checked arithmetic. A checkpoint may claim up to 2^64 − 1 entries, so the
//! reader is walked in order and reading stops at the first position where
//! neither an entry bundle nor a level-0 tile exists: a size whose files do not
//! exist costs one failed read, not 2^56. Memory stays at a few hashes per 256
//! entries (one root per full tile, for each of the two lists); entry bytes are
//! hashed as they are parsed and never kept. Problems are capped at
//! [`MAX_PROBLEMS`] with a count of the rest, so a thoroughly damaged export
//! cannot make the report itself huge.

use std::fmt;

use crate::merkle::{
    self, EMPTY_ROOT, Frontier, Hash, MAX_TILE_LEVEL, TILE_HEIGHT, TILE_WIDTH, Tile, TileKind,
};
use crate::note::Checkpoint;

/// Most problems a [`Report`] lists; the number left out is in
/// [`Report::problems_omitted`]. One hundred locate the damage in any export a
/// person will read through; the rest only repeat the pattern.
pub const MAX_PROBLEMS: usize = 100;

/// Number of hashes (or entries) in a full tile, as a `u64` for index arithmetic.
const SPAN: u64 = TILE_WIDTH as u64;

/// What went wrong while reading or checking an exported log, located as
/// precisely as the export allows. Indexes are entry indexes (0-based) in the
/// tree of the checkpoint; paths are tlog-tiles paths as passed to `read`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The entries in the export do not hash to the checkpoint's root hash (some
    /// may be missing): the export is not what was signed. The problems after it
    /// say where.
    RootMismatch,
    /// `count` consecutive entries from `index` on hash differently from the
    /// leaf hashes that the checkpoint authenticates (through the level-0 tiles):
    /// they were changed, reordered, inserted or deleted. One problem per run of
    /// consecutive differing entries.
    EntryMismatch {
        /// First differing entry.
        index: u64,
        /// Length of the run.
        count: u64,
    },
    /// The entry bundle at `path` is absent or ends early: the entries from
    /// `first_missing` to the end of that bundle are not in the export.
    MissingEntries {
        /// The bundle's path.
        path: String,
        /// First entry not in the export.
        first_missing: u64,
    },
    /// The entry bundle at `path` is cut inside an entry (its length prefix or
    /// its bytes are incomplete) at entry `index`; the entries before it were read.
    BundleUnreadable {
        /// The bundle's path.
        path: String,
        /// The entry that is cut.
        index: u64,
    },
    /// The entry bundle at `path` has bytes after the last entry its path
    /// allows: more entries than its width. Bundles are immutable, so this is
    /// damage or an unsigned addition, never growth of the log.
    ExtraEntries {
        /// The bundle's path.
        path: String,
    },
    /// `count` consecutive entries from `index` on differ from the stored
    /// level-0 tiles, but neither the entries nor the tiles hash to the
    /// checkpoint's root: one of the two was changed here. A hint, not proof.
    EntriesDisagreeWithTiles {
        /// First position where they disagree.
        index: u64,
        /// Length of the run.
        count: u64,
    },
    /// The hash tile at `path` is absent (nor is a full tile there to stand in
    /// for a partial one).
    TileMissing {
        /// The tile's path.
        path: String,
    },
    /// The hash tile at `path` is not its width times 32 bytes long.
    TileUnreadable {
        /// The tile's path.
        path: String,
    },
    /// The hash tile at `path` differs from the hashes recomputed from the level
    /// below: from the entries when they hash to the checkpoint's root, else
    /// from the stored level-0 tiles.
    TileMismatch {
        /// The tile's path.
        path: String,
    },
    /// All level-0 tiles are present and readable but do not hash to the
    /// checkpoint's root, so they cannot vouch for any entry.
    TilesRootMismatch,
    /// The earlier checkpoint names another log.
    OldOriginMismatch,
    /// The earlier checkpoint has more entries than this one: the log shrank
    /// (a rollback), or the two checkpoints were passed the wrong way round.
    OldCheckpointLarger {
        /// The earlier checkpoint's size.
        old_size: u64,
    },
    /// The first `old_size` leaves, as authenticated by this checkpoint, do not
    /// hash to the earlier checkpoint's root: the two signed checkpoints are not
    /// of one append-only log (a fork or a rewrite by whoever holds the key).
    OldCheckpointInconsistent {
        /// The earlier checkpoint's size.
        old_size: u64,
    },
    /// Nothing in the export hashes to this checkpoint's root, and its first
    /// `old_size` entries (or level-0 hashes) do not hash to the earlier
    /// checkpoint's root either: the damage lies within that prefix (or the log
    /// forked).
    OldPrefixMismatch {
        /// The earlier checkpoint's size.
        old_size: u64,
    },
    /// The earlier checkpoint could not be checked: nothing in the export hashes
    /// to this checkpoint's root and the first `old_size` entries and level-0
    /// hashes are not all present.
    OldCheckpointUnchecked {
        /// The earlier checkpoint's size.
        old_size: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RootMismatch => f.write_str("the entries do not hash to the checkpoint's root hash"),
            Self::EntryMismatch { index, count } => {
                write!(f, "{count} entries from index {index} differ from the signed log")
            }
            Self::MissingEntries { path, first_missing } => {
                write!(f, "{path}: entries from index {first_missing} are missing")
            }
            Self::BundleUnreadable { path, index } => write!(f, "{path}: entry {index} is cut short"),
            Self::ExtraEntries { path } => write!(f, "{path}: more entries than its width"),
            Self::EntriesDisagreeWithTiles { index, count } => write!(
                f,
                "{count} entries from index {index} differ from the level-0 tiles (neither is authenticated)"
            ),
            Self::TileMissing { path } => write!(f, "{path}: missing"),
            Self::TileUnreadable { path } => write!(f, "{path}: wrong length for its width"),
            Self::TileMismatch { path } => {
                write!(
                    f,
                    "{path}: differs from the hashes recomputed from the level below"
                )
            }
            Self::TilesRootMismatch => {
                f.write_str("the level-0 tiles do not hash to the checkpoint's root hash")
            }
            Self::OldOriginMismatch => f.write_str("the earlier checkpoint is of another log"),
            Self::OldCheckpointLarger { old_size } => {
                write!(
                    f,
                    "the earlier checkpoint has more entries ({old_size}) than this one"
                )
            }
            Self::OldCheckpointInconsistent { old_size } => write!(
                f,
                "the log signed now does not extend the earlier checkpoint of {old_size} entries"
            ),
            Self::OldPrefixMismatch { old_size } => write!(
                f,
                "the first {old_size} entries do not hash to the earlier checkpoint's root"
            ),
            Self::OldCheckpointUnchecked { old_size } => write!(
                f,
                "the earlier checkpoint of {old_size} entries could not be checked"
            ),
        }
    }
}

/// The outcome of [`verify_export`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The checkpoint's tree size.
    pub size: u64,
    /// Entries read in order from index 0 up to the first missing or unreadable
    /// one: all `size` of them when the export is complete.
    pub entries_read: u64,
    /// The root hash of those `entries_read` entries.
    pub computed_root: Hash,
    /// The first entry that is not the one signed (changed or missing), when
    /// the export allows locating it exactly; `None` when the entries verify, or
    /// when nothing in the export is authenticated well enough to say where
    /// they first differ (the problems then hold hints).
    pub first_bad_entry: Option<u64>,
    /// Number of leading entries proven to be the signed ones, by this
    /// checkpoint or by the earlier one: `size` when the entries verify.
    pub verified_prefix: u64,
    /// What is wrong, most important first, at most [`MAX_PROBLEMS`]. Empty when
    /// the export is complete and every file matches the checkpoint.
    pub problems: Vec<Problem>,
    /// Problems found but left out of `problems`.
    pub problems_omitted: u64,
}

impl Report {
    /// Whether the export holds exactly the signed entries and tiles, and is
    /// consistent with the earlier checkpoint if one was given.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }
}

/// Verifies an exported log against `checkpoint`, whose signature the caller
/// has already checked (with [`Checkpoint::open`]), and, with `old`, that this
/// checkpoint extends an earlier one of the same log.
///
/// `read(path)` returns `Ok(Some(bytes))` for a file of the export (paths such
/// as `tile/0/x001/234` or `tile/entries/005.p/17`), `Ok(None)` if the export
/// has no such file, and `Err` only for a failure to read, which is passed back
/// unchanged. A missing partial tile or bundle is looked for as the full one
/// too, as tlog-tiles allows (the full one holds the partial one's hashes and
/// entries at its start).
///
/// Only a failing `read` makes this return `Err`: damage of any kind is
/// described in the [`Report`].
pub fn verify_export<E>(
    checkpoint: &Checkpoint,
    old: Option<&Checkpoint>,
    mut read: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
) -> Result<Report, E> {
    let size = checkpoint.size();
    let old_size = old.map(Checkpoint::size).filter(|&o| o <= size);
    let mut found = Findings::default();
    let (entries, stored, compare) = read_level0(size, old_size, &mut read, &mut found)?;

    let entries_root = entries.root();
    let entries_read = entries.len();
    let entries_ok = entries_read == size && &entries_root == checkpoint.root_hash();
    let stored_complete = stored.len() == size;
    let stored_ok = stored_complete && &stored.root() == checkpoint.root_hash();
    if !entries_ok {
        found.first.push(Problem::RootMismatch);
    }
    if stored_complete && !stored_ok {
        found.tiles_root_mismatch = true;
    }

    // Where entries and tiles disagree, the authenticated side decides which
    // file is wrong.
    if stored_ok {
        for &(index, count) in &compare.runs {
            found.entry(index, Problem::EntryMismatch { index, count });
        }
        found.omitted += compare.runs_omitted;
    } else if entries_ok {
        for (index, path) in &compare.differing_tiles {
            found.tile(0, *index, Problem::TileMismatch { path: path.clone() });
        }
        found.omitted += compare.tiles_omitted;
    } else {
        for &(index, count) in &compare.runs {
            found.entry(index, Problem::EntriesDisagreeWithTiles { index, count });
        }
        found.omitted += compare.runs_omitted;
    }

    // The first entry that is missing or differs from the stored tiles; exact
    // wherever the stored tiles are authenticated.
    let first_unavailable = (entries_read < size).then_some(entries_read);
    let first_off_tiles = min_some(compare.first_mismatch, first_unavailable);

    let mut first_bad_entry = None;
    let mut verified_prefix = 0;
    if entries_ok {
        verified_prefix = size;
    } else if stored_ok {
        first_bad_entry = first_off_tiles.filter(|&i| i < size);
        verified_prefix = first_off_tiles.unwrap_or(size).min(size);
    }

    if let Some(old) = old {
        let old_root = old.root_hash();
        if old.origin() != checkpoint.origin() {
            found.first.push(Problem::OldOriginMismatch);
        }
        match old_size {
            None => found
                .first
                .push(Problem::OldCheckpointLarger { old_size: old.size() }),
            Some(old_size) if entries_ok || stored_ok => {
                // A list this checkpoint authenticates is the signed log itself:
                // its prefix root is what the signer committed to at old_size.
                let signed = if stored_ok {
                    stored.old_root
                } else {
                    entries.old_root
                };
                if signed.as_ref() != Some(old_root) {
                    found.first.push(Problem::OldCheckpointInconsistent { old_size });
                }
            }
            Some(old_size) => {
                // Nothing is authenticated by this checkpoint: the earlier one
                // can still vouch for a prefix, which bounds or locates the damage.
                if entries.old_root.as_ref() == Some(old_root) {
                    verified_prefix = old_size;
                } else if stored.old_root.as_ref() == Some(old_root) {
                    first_bad_entry = first_off_tiles.filter(|&i| i < old_size);
                    verified_prefix = first_off_tiles.unwrap_or(old_size).min(old_size);
                } else if entries.old_root.is_some() || stored.old_root.is_some() {
                    found.first.push(Problem::OldPrefixMismatch { old_size });
                } else {
                    found.first.push(Problem::OldCheckpointUnchecked { old_size });
                }
            }
        }
    }

    let level1 = if entries_ok {
        entries.tile_roots
    } else {
        stored.tile_roots
    };
    check_upper_tiles(size, level1, entries_ok || stored_ok, &mut read, &mut found)?;

    let (problems, problems_omitted) = found.into_problems();
    Ok(Report {
        size,
        entries_read,
        computed_root: entries_root,
        first_bad_entry,
        verified_prefix,
        problems,
        problems_omitted,
    })
}

/// Reads every entry bundle and level-0 tile of the tree of `size` leaves in
/// order, into the entries' and the stored tiles' leaf-hash lists and their
/// position-by-position comparison.
fn read_level0<E>(
    size: u64,
    old_size: Option<u64>,
    read: &mut impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
    found: &mut Findings,
) -> Result<(Prefix, Prefix, Comparison), E> {
    let mut entries = Prefix::new(old_size);
    let mut stored = Prefix::new(old_size);
    let mut compare = Comparison::default();
    // One buffer for the leaf hashes of a bundle, reused: no allocation per entry.
    let mut entry_hashes: Vec<Hash> = Vec::with_capacity(usize::from(TILE_WIDTH));

    for index in 0..size.div_ceil(SPAN) {
        let Ok(tile) = Tile::new(0, index, width_at(size, 0, index)) else {
            break;
        };
        let start = index * SPAN;
        let bundle = fetch(read, tile, TileKind::Entries)?;
        let tile_file = fetch(read, tile, TileKind::Hashes)?;
        if bundle.bytes.is_none() && tile_file.bytes.is_none() {
            // Nothing left to compare: stop here rather than walk a claimed size
            // whose files were never written.
            found.entry(
                start,
                Problem::MissingEntries {
                    path: bundle.path,
                    first_missing: start,
                },
            );
            found.tile(0, index, Problem::TileMissing { path: tile_file.path });
            break;
        }

        entry_hashes.clear();
        read_bundle(tile, &bundle, &mut entry_hashes, found);
        let tile_hashes = match parse_tile(tile, &tile_file) {
            Ok(hashes) => hashes,
            Err(problem) => {
                found.tile(0, index, problem);
                Vec::new()
            }
        };

        // A full tile's subtree root is needed for both lists; when they agree
        // (the normal case) it is computed once.
        let entries_root =
            (entry_hashes.len() == usize::from(TILE_WIDTH)).then(|| merkle::root(&entry_hashes));
        let stored_root = if tile_hashes == entry_hashes {
            entries_root
        } else {
            None
        };
        entries.extend(&entry_hashes, entries_root);
        stored.extend(&tile_hashes, stored_root);
        compare.tile(tile, &tile_file.path, &entry_hashes, &tile_hashes);
    }
    entries.finish();
    stored.finish();
    compare.close();
    Ok((entries, stored, compare))
}

/// Hashes the entries of the bundle of level-0 `tile` into `out` and records
/// what is wrong with the file.
fn read_bundle(tile: Tile, bundle: &Fetched, out: &mut Vec<Hash>, found: &mut Findings) {
    let start = tile.index() * SPAN;
    let Some(bytes) = &bundle.bytes else {
        found.entry(
            start,
            Problem::MissingEntries {
                path: bundle.path.clone(),
                first_missing: start,
            },
        );
        return;
    };
    let end = hash_bundle(bytes, usize::from(tile.width()), out);
    let at = start + out.len() as u64;
    let path = bundle.path.clone();
    match end {
        BundleEnd::Complete => {}
        BundleEnd::Short => found.entry(
            at,
            Problem::MissingEntries {
                path,
                first_missing: at,
            },
        ),
        BundleEnd::Cut => found.entry(at, Problem::BundleUnreadable { path, index: at }),
        // A full bundle read in place of a partial one goes on past this
        // checkpoint's size; only the partial file itself must end on time.
        BundleEnd::Trailing if bundle.full => {}
        BundleEnd::Trailing => found.entry(at, Problem::ExtraEntries { path }),
    }
}

/// Checks the hash tiles above level 0, given the level-1 hashes recomputed
/// from a level-0 list.
///
/// With an `authenticated` level-0 list every tile is compared with the hashes
/// recomputed from it, so each wrong tile is named once. Without one there is
/// no ground truth: each level is compared with the stored level below, which
/// names the tiles where two levels disagree.
fn check_upper_tiles<E>(
    size: u64,
    level1: Vec<Hash>,
    authenticated: bool,
    read: &mut impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
    found: &mut Findings,
) -> Result<(), E> {
    let mut expected = level1;
    for level in 1..=MAX_TILE_LEVEL {
        let hashes = hashes_at(size, level);
        if hashes == 0 {
            break;
        }
        // This level's full tiles as stored, up to the first bad one.
        let mut stored_level: Vec<Hash> = Vec::new();
        let mut contiguous = true;
        for index in 0..hashes.div_ceil(SPAN) {
            let Ok(tile) = Tile::new(level, index, width_at(size, level, index)) else {
                break;
            };
            // Beyond what the level below yields, nothing can be recomputed; the
            // gap below is already reported.
            let Some(want) = usize::try_from(index * SPAN)
                .ok()
                .and_then(|lo| Some(lo..lo.checked_add(usize::from(tile.width()))?))
                .and_then(|range| expected.get(range))
            else {
                break;
            };
            let file = fetch(read, tile, TileKind::Hashes)?;
            match parse_tile(tile, &file) {
                Err(problem) => {
                    found.tile(level, index, problem);
                    contiguous = false;
                }
                Ok(got) => {
                    if got != want {
                        found.tile(level, index, Problem::TileMismatch { path: file.path });
                    }
                    if contiguous && tile.is_full() {
                        stored_level.extend_from_slice(&got);
                    }
                }
            }
        }
        let below = if authenticated { expected } else { stored_level };
        expected = below
            .chunks_exact(usize::from(TILE_WIDTH))
            .map(merkle::root)
            .collect();
    }

    Ok(())
}

/// The width of tile `index` at tile `level` in the tree of `size` leaves:
/// 256, or the remainder for the right-most tile.
fn width_at(size: u64, level: u8, index: u64) -> u16 {
    let rest = hashes_at(size, level).saturating_sub(index.saturating_mul(SPAN));
    // At most 256, so it fits in u16.
    rest.min(SPAN) as u16
}

/// Number of hashes at tile `level` in the tree of `size` leaves (complete
/// subtrees of 256^level leaves); 0 above the highest level.
fn hashes_at(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(TILE_HEIGHT) * u32::from(level))
        .unwrap_or(0)
}

/// The smaller of two optional indexes, ignoring an absent one.
fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A file of the export as read.
struct Fetched {
    /// The path the bytes came from, or the tile's own path when absent.
    path: String,
    bytes: Option<Vec<u8>>,
    /// The bytes are the full tile's, read in place of an absent partial one.
    full: bool,
}

/// Reads a tile or bundle, falling back from an absent partial file to the full
/// one: a log may delete a partial tile once the full one exists (tlog-tiles,
/// "Partial Tiles"), and an export taken later holds only the full one.
fn fetch<E>(
    read: &mut impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
    tile: Tile,
    kind: TileKind,
) -> Result<Fetched, E> {
    let path_of = |t: Tile| match kind {
        TileKind::Hashes => Some(t.path()),
        TileKind::Entries => t.entries_path(),
    };
    let Some(path) = path_of(tile) else {
        return Ok(Fetched {
            path: String::new(),
            bytes: None,
            full: false,
        });
    };
    if let Some(bytes) = read(&path)? {
        return Ok(Fetched {
            path,
            bytes: Some(bytes),
            full: false,
        });
    }
    if !tile.is_full()
        && let Ok(full) = Tile::new(tile.level(), tile.index(), TILE_WIDTH)
        && let Some(full_path) = path_of(full)
        && let Some(bytes) = read(&full_path)?
    {
        return Ok(Fetched {
            path: full_path,
            bytes: Some(bytes),
            full: true,
        });
    }
    Ok(Fetched {
        path,
        bytes: None,
        full: false,
    })
}

/// The hashes of `tile` from a fetched file (the first `width` of a full tile
/// read in its place), or the problem with the file.
fn parse_tile(tile: Tile, file: &Fetched) -> Result<Vec<Hash>, Problem> {
    let Some(bytes) = &file.bytes else {
        return Err(Problem::TileMissing {
            path: file.path.clone(),
        });
    };
    let parsed = if file.full {
        Tile::new(tile.level(), tile.index(), TILE_WIDTH)
            .and_then(|full| full.parse_data(bytes))
            .map(|mut hashes| {
                hashes.truncate(usize::from(tile.width()));
                hashes
            })
    } else {
        tile.parse_data(bytes)
    };
    parsed.map_err(|_| Problem::TileUnreadable {
        path: file.path.clone(),
    })
}

/// How an entry bundle ended, as [`hash_bundle`] read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BundleEnd {
    /// Exactly `width` entries and nothing after them.
    Complete,
    /// The bytes ended cleanly before `width` entries.
    Short,
    /// A length prefix or an entry is incomplete.
    Cut,
    /// Bytes remain after `width` entries.
    Trailing,
}

/// Hashes the entries of a tlog-tiles entry bundle into `out`, at most `width`
/// of them.
///
/// This reads the same format as [`merkle::decode_entry_bundle`] (which accepts
/// a bundle exactly when this returns [`BundleEnd::Complete`]; a test checks
/// it), but that function refuses a damaged bundle as a whole, while a verifier
/// needs the entries before the damage to say which entry is the first one
/// lost. Hashing while parsing also avoids collecting entry slices.
fn hash_bundle(bytes: &[u8], width: usize, out: &mut Vec<Hash>) -> BundleEnd {
    let mut rest = bytes;
    for _ in 0..width {
        if rest.is_empty() {
            return BundleEnd::Short;
        }
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return BundleEnd::Cut;
        };
        let Some((entry, tail)) = tail.split_at_checked(usize::from(u16::from_be_bytes(*len))) else {
            return BundleEnd::Cut;
        };
        out.push(merkle::leaf_hash(entry));
        rest = tail;
    }
    if rest.is_empty() {
        BundleEnd::Complete
    } else {
        BundleEnd::Trailing
    }
}

/// One list of leaf hashes (the entries' or the stored level-0 tiles'), read
/// from index 0 up to its first gap, kept as the subtree roots of its full tiles
/// plus the leaves after the last full tile: enough for its root and for the
/// root of any prefix, at 32 bytes per 256 leaves.
#[derive(Default)]
struct Prefix {
    /// The full tiles' roots as the leaves of a tree: its perfect subtrees are
    /// the prefix's perfect subtrees of 256 leaves and more.
    tiles: Frontier,
    /// The same roots in order: the level-1 hashes, to check the tiles above.
    tile_roots: Vec<Hash>,
    /// Leaves after the last full tile (fewer than 256).
    tail: Vec<Hash>,
    /// A gap or the right edge of the tree was reached: nothing more is added.
    closed: bool,
    /// Size of the earlier checkpoint, if one is to be checked.
    old_size: Option<u64>,
    /// Root of the first `old_size` leaves, once the list reaches that far.
    old_root: Option<Hash>,
}

impl Prefix {
    fn new(old_size: Option<u64>) -> Self {
        Self {
            old_size,
            ..Self::default()
        }
    }

    /// Number of leaves in the list.
    fn len(&self) -> u64 {
        // The tile count is at most 2^56, so this cannot saturate.
        self.tiles.size().saturating_mul(SPAN) + self.tail.len() as u64
    }

    /// Appends the leaves of the next level-0 tile: all 256 (with their subtree
    /// root if the caller has it), or fewer, which closes the list.
    fn extend(&mut self, leaves: &[Hash], root: Option<Hash>) {
        if self.closed {
            return;
        }
        if let (Some(old), None) = (self.old_size, self.old_root)
            && let Some(n) = old.checked_sub(self.len())
            && let Some(within) = usize::try_from(n).ok().filter(|&n| n < leaves.len())
        {
            self.old_root = Some(join(&self.tiles, &leaves[..within]));
        }
        if leaves.len() == usize::from(TILE_WIDTH) {
            let root = root.unwrap_or_else(|| merkle::root(leaves));
            self.tiles.push(root);
            self.tile_roots.push(root);
        } else {
            self.tail.extend_from_slice(leaves);
            self.closed = true;
        }
    }

    /// Records the prefix root when the earlier checkpoint's size is exactly
    /// where the list ends.
    fn finish(&mut self) {
        if self.old_root.is_none() && self.old_size == Some(self.len()) {
            self.old_root = Some(self.root());
        }
    }

    /// The root hash of the whole list.
    fn root(&self) -> Hash {
        join(&self.tiles, &self.tail)
    }
}

/// The root of the tree whose first leaves are the full tiles summarised by
/// `tiles` and whose last are `leaves` (fewer than 256).
///
/// Every perfect subtree held by `tiles` spans 256 leaves or more and every one
/// of a frontier over `leaves` fewer, so together, in that order, they are the
/// perfect subtrees of the whole tree, largest first, and its root folds them
/// from the right exactly as [`Frontier::root`] does.
fn join(tiles: &Frontier, leaves: &[Hash]) -> Hash {
    let mut tail = Frontier::new();
    for leaf in leaves {
        tail.push(*leaf);
    }
    let nodes: Vec<&Hash> = tiles.nodes().iter().chain(tail.nodes()).collect();
    match nodes.split_last() {
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(**last, |acc, left| merkle::node_hash(left, &acc)),
        None => EMPTY_ROOT,
    }
}

/// Position-by-position comparison of the entries' leaf hashes with the stored
/// level-0 hashes, as runs of consecutive differing positions.
#[derive(Default)]
struct Comparison {
    /// Closed runs `(first index, length)`, at most [`MAX_PROBLEMS`].
    runs: Vec<(u64, u64)>,
    /// The run still growing.
    open: Option<(u64, u64)>,
    /// Runs left out of `runs`.
    runs_omitted: u64,
    /// Level-0 tiles (index, path) with at least one differing position, at
    /// most [`MAX_PROBLEMS`].
    differing_tiles: Vec<(u64, String)>,
    /// Tiles left out of `differing_tiles`.
    tiles_omitted: u64,
    /// The first differing position.
    first_mismatch: Option<u64>,
}

impl Comparison {
    /// Compares the positions of level-0 `tile` (stored at `path`) that both
    /// lists have; positions either lacks end a run.
    fn tile(&mut self, tile: Tile, path: &str, entries: &[Hash], stored: &[Hash]) {
        let start = tile.index() * SPAN;
        let both = entries.len().min(stored.len());
        if entries[..both] == stored[..both] {
            self.close();
        } else {
            if self.differing_tiles.len() < MAX_PROBLEMS {
                self.differing_tiles.push((tile.index(), path.to_owned()));
            } else {
                self.tiles_omitted += 1;
            }
            for (offset, (e, s)) in entries.iter().zip(stored).enumerate() {
                if e == s {
                    self.close();
                } else {
                    self.differ(start + offset as u64);
                }
            }
        }
        if both < usize::from(tile.width()) {
            self.close();
        }
    }

    fn differ(&mut self, position: u64) {
        self.first_mismatch.get_or_insert(position);
        match &mut self.open {
            Some((first, count)) if *first + *count == position => *count += 1,
            _ => {
                self.close();
                self.open = Some((position, 1));
            }
        }
    }

    fn close(&mut self) {
        if let Some(run) = self.open.take() {
            if self.runs.len() < MAX_PROBLEMS {
                self.runs.push(run);
            } else {
                self.runs_omitted += 1;
            }
        }
    }
}

/// Problems as they are found, kept in groups so the report can list the most
/// important first and stay bounded however many there are.
#[derive(Default)]
struct Findings {
    /// Root and earlier-checkpoint problems: the verdict, listed first.
    first: Vec<Problem>,
    /// Problems located at an entry index, with that index.
    entries: Vec<(u64, Problem)>,
    /// All level-0 tiles present but not hashing to the root.
    tiles_root_mismatch: bool,
    /// Problems with hash tiles, with the tile's level and index.
    tiles: Vec<((u8, u64), Problem)>,
    /// Problems left out because a group was full.
    omitted: u64,
}

impl Findings {
    fn entry(&mut self, index: u64, problem: Problem) {
        if self.entries.len() < MAX_PROBLEMS {
            self.entries.push((index, problem));
        } else {
            self.omitted += 1;
        }
    }

    fn tile(&mut self, level: u8, index: u64, problem: Problem) {
        if self.tiles.len() < MAX_PROBLEMS {
            self.tiles.push(((level, index), problem));
        } else {
            self.omitted += 1;
        }
    }

    /// The problems in order of importance: the verdict, then the entries from
    /// the first bad one on, then the tiles level by level; at most
    /// [`MAX_PROBLEMS`], with the number left out.
    fn into_problems(mut self) -> (Vec<Problem>, u64) {
        // Stable sorts: at one index, the order found (missing before mismatch).
        self.entries.sort_by_key(|(index, _)| *index);
        self.tiles.sort_by_key(|(at, _)| *at);
        let mut all = self.first;
        all.extend(self.entries.into_iter().map(|(_, p)| p));
        if self.tiles_root_mismatch {
            all.push(Problem::TilesRootMismatch);
        }
        all.extend(self.tiles.into_iter().map(|(_, p)| p));
        let mut omitted = self.omitted;
        if all.len() > MAX_PROBLEMS {
            omitted += (all.len() - MAX_PROBLEMS) as u64;
            all.truncate(MAX_PROBLEMS);
        }
        (all, omitted)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::convert::Infallible;

    use proptest::prelude::*;

    use super::*;
    use crate::merkle::{decode_entry_bundle, encode_entry_bundle, leaf_hash};
    use crate::note::NoteSigner;

    const ORIGIN: &str = "anshin.example/audit";

    type Files = HashMap<String, Vec<u8>>;

    /// An audit-log-like entry, 50 to 350 bytes long, distinct for every index.
    fn entry(i: u64) -> Vec<u8> {
        let pad = "x".repeat((i * 7 % 300) as usize);
        format!("{{\"seq\":{i},\"action\":\"card.reveal\",\"pad\":\"{pad}\"}}").into_bytes()
    }

    fn log(n: u64) -> Vec<Vec<u8>> {
        (0..n).map(entry).collect()
    }

    fn leaves(entries: &[Vec<u8>]) -> Vec<Hash> {
        entries.iter().map(|e| leaf_hash(e)).collect()
    }

    /// The tlog-tiles export of `entries`: every hash tile and entry bundle of
    /// the tree of that size.
    fn export(entries: &[Vec<u8>]) -> Files {
        let leaves = leaves(entries);
        let mut files = Files::new();
        for tile in Tile::all_for_size(entries.len() as u64) {
            let hashes = tile.hashes_from_leaves(&leaves).expect("hashes");
            files.insert(tile.path(), Tile::encode_data(&hashes));
            if let Some(path) = tile.entries_path() {
                let range = tile.leaf_range();
                let bundle = &entries[range.start as usize..range.end as usize];
                files.insert(path, encode_entry_bundle(bundle).expect("bundle"));
            }
        }
        files
    }

    /// A checkpoint of the first `size` of `entries`, signed and opened the way
    /// an auditor does before calling `verify_export`.
    fn checkpoint_of(origin: &str, entries: &[Vec<u8>]) -> Checkpoint {
        let signer = NoteSigner::generate(origin).expect("rng");
        let cp = Checkpoint::new(origin, entries.len() as u64, merkle::root(&leaves(entries))).expect("cp");
        let signed = cp.sign(&signer).expect("sign");
        Checkpoint::open(signed.as_bytes(), origin, &[signer.verifier().clone()]).expect("opens")
    }

    fn checkpoint(entries: &[Vec<u8>]) -> Checkpoint {
        checkpoint_of(ORIGIN, entries)
    }

    /// Verifies over the in-memory export, recording every path asked for.
    fn verify_reads(files: &Files, cp: &Checkpoint, old: Option<&Checkpoint>) -> (Report, Vec<String>) {
        let mut asked = Vec::new();
        let report = verify_export(cp, old, |path| {
            asked.push(path.to_owned());
            Ok::<_, Infallible>(files.get(path).cloned())
        })
        .unwrap_or_else(|never| match never {});
        (report, asked)
    }

    fn verify(files: &Files, cp: &Checkpoint, old: Option<&Checkpoint>) -> Report {
        verify_reads(files, cp, old).0
    }

    fn bundle_path(size: u64, index: u64) -> String {
        let tile = index / SPAN;
        Tile::new(0, tile, width_at(size, 0, tile))
            .expect("tile")
            .entries_path()
            .expect("level 0")
    }

    /// Rewrites the bundle holding entry `index` (of a log of `size`) with
    /// `change` applied to its entries; returns the original bytes.
    fn edit_bundle(
        files: &mut Files,
        size: u64,
        index: u64,
        change: impl FnOnce(&mut Vec<Vec<u8>>),
    ) -> Vec<u8> {
        let path = bundle_path(size, index);
        let original = files.get(&path).expect("bundle").clone();
        let mut entries: Vec<Vec<u8>> = decode_entry_bundle(&original, None)
            .expect("decode")
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        change(&mut entries);
        files.insert(path, encode_entry_bundle(&entries).expect("encode"));
        original
    }

    fn restore(files: &mut Files, size: u64, index: u64, original: Vec<u8>) {
        files.insert(bundle_path(size, index), original);
    }

    fn flip(files: &mut Files, path: &str, at: usize) {
        files.get_mut(path).expect(path)[at] ^= 0x20;
    }

    #[test]
    fn clean_exports_verify_and_every_file_is_read_once() {
        for n in [0u64, 1, 255, 256, 257, 65_536, 70_000] {
            let log = log(n);
            let files = export(&log);
            let cp = checkpoint(&log);
            let (report, asked) = verify_reads(&files, &cp, None);
            assert!(report.is_ok(), "{n}: {report:?}");
            assert_eq!(report.size, n);
            assert_eq!(report.entries_read, n);
            assert_eq!(&report.computed_root, cp.root_hash());
            assert_eq!(report.first_bad_entry, None);
            assert_eq!(report.verified_prefix, n);
            assert_eq!(report.problems_omitted, 0);
            // Exactly the export's files, each once: nothing skipped, nothing guessed.
            assert_eq!(asked.len(), files.len(), "{n}");
            assert_eq!(
                asked.into_iter().collect::<BTreeSet<_>>(),
                files.keys().cloned().collect::<BTreeSet<_>>()
            );
        }
    }

    #[test]
    fn a_changed_byte_is_located_exactly() {
        let n = 70_000;
        let log = log(n);
        let mut files = export(&log);
        let cp = checkpoint(&log);
        for index in [0, 1, 255, 256, 65_535, 65_536, 69_887, 69_888, 69_999] {
            let original = edit_bundle(&mut files, n, index, |es| es[(index % SPAN) as usize][3] ^= 1);
            let report = verify(&files, &cp, None);
            assert_eq!(report.first_bad_entry, Some(index));
            assert_eq!(report.verified_prefix, index);
            assert_eq!(report.entries_read, n);
            assert_ne!(&report.computed_root, cp.root_hash());
            assert_eq!(
                report.problems,
                vec![Problem::RootMismatch, Problem::EntryMismatch { index, count: 1 }]
            );
            assert!(!report.is_ok());
            restore(&mut files, n, index, original);
        }
        assert!(verify(&files, &cp, None).is_ok());
    }

    #[test]
    fn a_deleted_entry_is_located_exactly() {
        let n = 70_000;
        let log = log(n);
        let mut files = export(&log);
        let cp = checkpoint(&log);
        // Removed from its bundle only: the rest of that bundle moves up one.
        for index in [0u64, 100, 255, 256, 69_950, 69_999] {
            let original = edit_bundle(&mut files, n, index, |es| {
                es.remove((index % SPAN) as usize);
            });
            let report = verify(&files, &cp, None);
            assert_eq!(report.first_bad_entry, Some(index), "{index}");
            assert_eq!(report.verified_prefix, index);
            let tile_end = (index / SPAN * SPAN + SPAN).min(n);
            let mut expected = vec![Problem::RootMismatch];
            if index + 1 < tile_end {
                expected.push(Problem::EntryMismatch {
                    index,
                    count: tile_end - 1 - index,
                });
            }
            expected.push(Problem::MissingEntries {
                path: bundle_path(n, index),
                first_missing: tile_end - 1,
            });
            assert_eq!(report.problems, expected, "{index}");
            restore(&mut files, n, index, original);
        }

        // Removed from the log and every bundle rewritten, so all later entries
        // move up one and the last bundle is one short; the tiles are left alone.
        for (n, index) in [(70_000u64, 12_345u64), (257, 3), (257, 256), (512, 300)] {
            let log = self::log(n);
            let mut shifted = log.clone();
            shifted.remove(index as usize);
            let mut files = export(&log);
            for tile in Tile::all_for_size(n).filter(|t| t.level() == 0) {
                let range = tile.leaf_range();
                let end = (range.end as usize).min(shifted.len());
                let bundle = encode_entry_bundle(&shifted[range.start as usize..end]).expect("bundle");
                files.insert(tile.entries_path().expect("level 0"), bundle);
            }
            let report = verify(&files, &checkpoint(&log), None);
            assert_eq!(report.first_bad_entry, Some(index), "{n} {index}");
            assert_eq!(report.entries_read, n - 1);
            let mut expected = vec![Problem::RootMismatch];
            if index < n - 1 {
                expected.push(Problem::EntryMismatch {
                    index,
                    count: n - 1 - index,
                });
            }
            expected.push(Problem::MissingEntries {
                path: bundle_path(n, n - 1),
                first_missing: n - 1,
            });
            assert_eq!(report.problems, expected, "{n} {index}");
        }
    }

    #[test]
    fn swapped_entries_are_located_exactly() {
        let n = 70_000;
        let log = log(n);
        let cp = checkpoint(&log);
        for (i, j, runs) in [
            (5u64, 6u64, vec![(5u64, 2u64)]),
            (5, 9, vec![(5, 1), (9, 1)]),
            (255, 256, vec![(255, 2)]),
            (5, 700, vec![(5, 1), (700, 1)]),
            (0, 69_999, vec![(0, 1), (69_999, 1)]),
        ] {
            let mut swapped = log.clone();
            swapped.swap(i as usize, j as usize);
            let mut files = export(&swapped);
            // The tiles still hold the signed log's hashes.
            for (path, bytes) in export(&log) {
                if !path.starts_with("tile/entries/") {
                    files.insert(path, bytes);
                }
            }
            let report = verify(&files, &cp, None);
            assert_eq!(report.first_bad_entry, Some(i));
            let mut expected = vec![Problem::RootMismatch];
            expected.extend(
                runs.into_iter()
                    .map(|(index, count)| Problem::EntryMismatch { index, count }),
            );
            assert_eq!(report.problems, expected, "{i} {j}");
        }
    }

    #[test]
    fn a_truncated_tail_is_located_exactly() {
        for n in [70_000u64, 512, 257, 1] {
            let log = log(n);
            let files = export(&log);
            let cp = checkpoint(&log);
            let last = bundle_path(n, n - 1);
            let last_start = (n - 1) / SPAN * SPAN;

            // The last bundle deleted.
            let mut cut = files.clone();
            cut.remove(&last);
            let report = verify(&cut, &cp, None);
            assert_eq!(report.first_bad_entry, Some(last_start), "{n}");
            assert_eq!(report.entries_read, last_start);
            assert_eq!(
                report.problems,
                vec![
                    Problem::RootMismatch,
                    Problem::MissingEntries {
                        path: last.clone(),
                        first_missing: last_start,
                    }
                ]
            );

            // The last bundle's final entries dropped.
            for k in 1..=(n - last_start).min(3) {
                let mut cut = files.clone();
                edit_bundle(&mut cut, n, n - 1, |es| es.truncate(es.len() - k as usize));
                let report = verify(&cut, &cp, None);
                assert_eq!(report.first_bad_entry, Some(n - k), "{n} {k}");
                assert_eq!(report.entries_read, n - k);
                assert_eq!(
                    report.problems,
                    vec![
                        Problem::RootMismatch,
                        Problem::MissingEntries {
                            path: last.clone(),
                            first_missing: n - k,
                        }
                    ]
                );
            }

            // The last bundle's bytes cut inside its final entry or its length prefix.
            let bytes = &files[&last];
            let final_len = log[(n - 1) as usize].len();
            for drop in [1, final_len, final_len + 1] {
                let mut cut = files.clone();
                cut.insert(last.clone(), bytes[..bytes.len() - drop].to_vec());
                let report = verify(&cut, &cp, None);
                assert_eq!(report.first_bad_entry, Some(n - 1), "{n} {drop}");
                assert_eq!(
                    report.problems,
                    vec![
                        Problem::RootMismatch,
                        Problem::BundleUnreadable {
                            path: last.clone(),
                            index: n - 1,
                        }
                    ]
                );
            }
        }
    }

    #[test]
    fn extra_entries_in_a_bundle_are_reported() {
        let n = 300;
        let log = log(n);
        let mut files = export(&log);
        let cp = checkpoint(&log);
        edit_bundle(&mut files, n, n - 1, |es| es.push(b"unsigned".to_vec()));
        let report = verify(&files, &cp, None);
        // The signed entries are all there and verify; the addition is still wrong.
        assert_eq!(report.first_bad_entry, None);
        assert_eq!(report.verified_prefix, n);
        assert_eq!(
            report.problems,
            vec![Problem::ExtraEntries {
                path: "tile/entries/001.p/44".to_owned()
            }]
        );
        // An entry inserted into a full bundle pushes its last one out.
        let mut files = export(&log);
        edit_bundle(&mut files, n, 10, |es| es.insert(10, b"forged".to_vec()));
        let report = verify(&files, &cp, None);
        assert_eq!(report.first_bad_entry, Some(10));
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::EntryMismatch {
                    index: 10,
                    count: 246
                },
                Problem::ExtraEntries {
                    path: "tile/entries/000".to_owned()
                },
            ]
        );
    }

    #[test]
    fn tampered_hash_tiles_are_named() {
        let n = 70_000;
        let log = log(n);
        let files = export(&log);
        let cp = checkpoint(&log);
        for path in ["tile/0/000", "tile/0/005", "tile/0/273.p/112"] {
            let mut bad = files.clone();
            flip(&mut bad, path, 40);
            let report = verify(&bad, &cp, None);
            // The entries verify, so they are the ground truth and the tile is wrong.
            assert_eq!(report.first_bad_entry, None);
            assert_eq!(report.verified_prefix, n);
            assert_eq!(
                report.problems,
                vec![
                    Problem::TilesRootMismatch,
                    Problem::TileMismatch {
                        path: path.to_owned()
                    }
                ],
                "{path}"
            );
        }
        for path in ["tile/1/000", "tile/1/001.p/17", "tile/2/000.p/1"] {
            let mut bad = files.clone();
            flip(&mut bad, path, 0);
            let report = verify(&bad, &cp, None);
            assert_eq!(
                report.problems,
                vec![Problem::TileMismatch {
                    path: path.to_owned()
                }],
                "{path}"
            );
        }
        let mut bad = files.clone();
        bad.remove("tile/1/000");
        bad.get_mut("tile/0/007").expect("tile").pop();
        let report = verify(&bad, &cp, None);
        assert_eq!(
            report.problems,
            vec![
                Problem::TileUnreadable {
                    path: "tile/0/007".to_owned()
                },
                Problem::TileMissing {
                    path: "tile/1/000".to_owned()
                },
            ]
        );

        // An entry changed and its level-0 hash rewritten to match: nothing at
        // level 0 verifies, and the untouched level-1 tile gives it away.
        let mut forged = log.clone();
        forged[1000][0] ^= 1;
        let mut bad = files.clone();
        for path in ["tile/entries/003", "tile/0/003"] {
            bad.insert(path.to_owned(), export(&forged)[path].clone());
        }
        let report = verify(&bad, &cp, None);
        assert_eq!(report.first_bad_entry, None);
        assert_eq!(report.verified_prefix, 0);
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::TilesRootMismatch,
                Problem::TileMismatch {
                    path: "tile/1/000".to_owned()
                },
            ]
        );
    }

    #[test]
    fn earlier_checkpoints_of_a_prefix_are_consistent() {
        let n = 70_000;
        let log = log(n);
        let files = export(&log);
        let cp = checkpoint(&log);
        for old in [0u64, 1, 255, 256, 257, 1_000, 65_536, 69_888, 69_999, 70_000] {
            let old_cp = checkpoint(&log[..old as usize]);
            let report = verify(&files, &cp, Some(&old_cp));
            assert!(report.is_ok(), "{old}: {report:?}");
        }
        // Consistency is checked against the tiles when the entries are damaged.
        let mut damaged = files.clone();
        edit_bundle(&mut damaged, n, 10, |es| es[10].push(b'!'));
        let report = verify(&damaged, &cp, Some(&checkpoint(&log[..1_000])));
        assert_eq!(report.first_bad_entry, Some(10));
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::EntryMismatch { index: 10, count: 1 }
            ]
        );
    }

    #[test]
    fn earlier_checkpoints_of_another_log_are_reported() {
        let n = 5_000;
        let log = log(n);
        let files = export(&log);
        let cp = checkpoint(&log);
        let mut other = log[..1_000].to_vec();
        other[999] = b"rewritten history".to_vec();
        let report = verify(&files, &cp, Some(&checkpoint(&other)));
        assert_eq!(
            report.problems,
            vec![Problem::OldCheckpointInconsistent { old_size: 1_000 }]
        );
        // It holds with the entries or the tiles alone as the authenticated list.
        for prefix in ["tile/entries/", "tile/0/"] {
            let only: Files = files
                .iter()
                .filter(|(p, _)| !p.starts_with(prefix))
                .map(|(p, b)| (p.clone(), b.clone()))
                .collect();
            let report = verify(&only, &cp, Some(&checkpoint(&other)));
            assert!(
                report
                    .problems
                    .contains(&Problem::OldCheckpointInconsistent { old_size: 1_000 }),
                "{prefix}: {report:?}"
            );
        }

        let mut longer = log.clone();
        longer.push(b"later".to_vec());
        let report = verify(&files, &cp, Some(&checkpoint(&longer)));
        assert_eq!(
            report.problems,
            vec![Problem::OldCheckpointLarger { old_size: n + 1 }]
        );

        let elsewhere = checkpoint_of("other.example/log", &log[..100]);
        let report = verify(&files, &cp, Some(&elsewhere));
        assert_eq!(report.problems, vec![Problem::OldOriginMismatch]);
    }

    #[test]
    fn an_earlier_checkpoint_bounds_damage_the_tiles_cannot_locate() {
        let n = 10_000;
        let log = log(n);
        let cp = checkpoint(&log);
        // Entries from 5,000 on rewritten and every tile recomputed to match:
        // nothing verifies against the new checkpoint.
        let mut forged = log.clone();
        for e in &mut forged[5_000..] {
            e[0] ^= 1;
        }
        let files = export(&forged);
        let report = verify(&files, &cp, None);
        assert_eq!(report.first_bad_entry, None);
        assert_eq!(report.verified_prefix, 0);
        assert_eq!(
            report.problems,
            vec![Problem::RootMismatch, Problem::TilesRootMismatch]
        );
        // An earlier checkpoint proves the prefix before the damage.
        let report = verify(&files, &cp, Some(&checkpoint(&log[..4_000])));
        assert_eq!(report.verified_prefix, 4_000);
        assert_eq!(report.first_bad_entry, None);
        assert_eq!(
            report.problems,
            vec![Problem::RootMismatch, Problem::TilesRootMismatch]
        );
        let report = verify(&files, &cp, Some(&checkpoint(&log[..6_000])));
        assert_eq!(report.verified_prefix, 0);
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::OldPrefixMismatch { old_size: 6_000 },
                Problem::TilesRootMismatch,
            ]
        );

        // Entries changed at 3,000 and a level-0 tile damaged at 7,000: neither
        // list verifies, but the tiles' prefix matches the earlier checkpoint,
        // which locates the entry exactly; the disagreements are hints.
        let mut files = export(&log);
        edit_bundle(&mut files, n, 3_000, |es| es[(3_000 % SPAN) as usize][0] ^= 1);
        flip(&mut files, "tile/0/027", 32 * 88);
        let old = checkpoint(&log[..5_000]);
        let report = verify(&files, &cp, Some(&old));
        assert_eq!(report.first_bad_entry, Some(3_000));
        assert_eq!(report.verified_prefix, 3_000);
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::EntriesDisagreeWithTiles {
                    index: 3_000,
                    count: 1
                },
                Problem::EntriesDisagreeWithTiles {
                    index: 27 * 256 + 88,
                    count: 1
                },
                Problem::TilesRootMismatch,
                // Level 1 disagrees with the damaged level-0 tile below it.
                Problem::TileMismatch {
                    path: "tile/1/000.p/39".to_owned()
                },
            ]
        );
        // Without the entries or tiles of that prefix it cannot be checked.
        files.remove("tile/entries/001");
        files.remove("tile/0/001");
        let report = verify(&files, &cp, Some(&old));
        assert!(
            report
                .problems
                .contains(&Problem::OldCheckpointUnchecked { old_size: 5_000 }),
            "{report:?}"
        );
    }

    #[test]
    fn partial_files_fall_back_to_full_ones() {
        // An export taken when the log had 600 entries, checked against the
        // checkpoint of 300: its partial level-0 files were deleted once full.
        let log = log(600);
        let mut files = export(&log);
        files.extend(export(&log[..300]));
        files.remove("tile/0/001.p/44");
        files.remove("tile/entries/001.p/44");
        let cp = checkpoint(&log[..300]);
        let report = verify(&files, &cp, None);
        assert!(report.is_ok(), "{report:?}");
        // The full bundle in the partial one's place is not.
        files.insert(
            "tile/entries/001.p/44".to_owned(),
            files["tile/entries/001"].clone(),
        );
        let report = verify(&files, &cp, None);
        assert_eq!(
            report.problems,
            vec![Problem::ExtraEntries {
                path: "tile/entries/001.p/44".to_owned()
            }]
        );
    }

    #[test]
    fn impossible_sizes_stop_at_the_first_missing_file() {
        let log = log(1_000);
        let files = export(&log);
        for size in [u64::MAX, 1 << 40, 1_001] {
            let cp = Checkpoint::new(ORIGIN, size, [7; 32]).expect("cp");
            let (report, asked) = verify_reads(&files, &cp, None);
            // Tiles 0-2 are full in both trees; tile 3 is full in the claimed tree
            // but only partial in the export.
            assert!(asked.len() < 12, "{size}: {asked:?}");
            assert_eq!(report.entries_read, 768);
            assert_eq!(report.problems[0], Problem::RootMismatch);
            assert!(
                report.problems.contains(&Problem::MissingEntries {
                    path: bundle_path(size, 768),
                    first_missing: 768
                }),
                "{size}: {report:?}"
            );
        }
        let cp = Checkpoint::new(ORIGIN, u64::MAX, [7; 32]).expect("cp");
        let (report, asked) = verify_reads(&Files::new(), &cp, Some(&cp));
        assert_eq!(asked, vec!["tile/entries/000", "tile/0/000"]);
        assert_eq!(report.entries_read, 0);
        assert_eq!(report.first_bad_entry, None);
        assert_eq!(
            report.problems,
            vec![
                Problem::RootMismatch,
                Problem::OldCheckpointUnchecked { old_size: u64::MAX },
                Problem::MissingEntries {
                    path: "tile/entries/000".to_owned(),
                    first_missing: 0
                },
                Problem::TileMissing {
                    path: "tile/0/000".to_owned()
                },
            ]
        );
    }

    #[test]
    fn read_errors_are_passed_back() {
        let log = log(300);
        let files = export(&log);
        let cp = checkpoint(&log);
        let result = verify_export(&cp, None, |path| {
            if path == "tile/1/000.p/1" {
                Err("disk on fire")
            } else {
                Ok(files.get(path).cloned())
            }
        });
        assert_eq!(result, Err("disk on fire"));
    }

    #[test]
    fn problems_are_capped() {
        let n = 70_000;
        let log = log(n);
        let mut files = export(&log);
        let cp = checkpoint(&log);
        // Every other entry of the first 200 bundles changed: 25,600 runs.
        for tile in 0..200u64 {
            edit_bundle(&mut files, n, tile * SPAN, |es| {
                for e in es.iter_mut().step_by(2) {
                    e[0] ^= 1;
                }
            });
        }
        let report = verify(&files, &cp, None);
        assert_eq!(report.problems.len(), MAX_PROBLEMS);
        assert!(report.problems_omitted > 25_000);
        assert_eq!(report.first_bad_entry, Some(0));
        assert!(!report.is_ok());
    }

    #[test]
    fn join_matches_the_plain_root() {
        let all: Vec<Hash> = (0..1_400u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in (0..=1_400).step_by(7).chain([256, 512, 768, 1_024, 1_399]) {
            let mut tiles = Frontier::new();
            let chunks = all[..n].chunks_exact(256);
            let tail = chunks.remainder();
            for chunk in chunks {
                tiles.push(merkle::root(chunk));
            }
            assert_eq!(join(&tiles, tail), merkle::root(&all[..n]), "{n}");
        }
        // Prefix roots captured on the way agree too.
        for old in [0u64, 1, 255, 256, 257, 1_000, 1_024, 1_400] {
            let mut prefix = Prefix::new(Some(old));
            for chunk in all.chunks(256) {
                prefix.extend(chunk, None);
            }
            prefix.finish();
            assert_eq!(prefix.old_root, Some(merkle::root(&all[..old as usize])), "{old}");
            assert_eq!(prefix.root(), merkle::root(&all));
        }
    }

    /// One million entries of about 300 bytes, timed (release build:
    /// `cargo test --release -p anshin-crypto tlog -- --ignored --nocapture`).
    #[test]
    #[ignore = "timing; run in release"]
    fn verifies_a_million_entries_quickly() {
        let n = 1_000_000u64;
        let mut files = Files::new();
        let mut leaves = Vec::with_capacity(n as usize);
        for tile in Tile::all_for_size(n).filter(|t| t.level() == 0) {
            let entries: Vec<Vec<u8>> = tile
                .leaf_range()
                .map(|i| format!("{i:0>300}").into_bytes())
                .collect();
            leaves.extend(entries.iter().map(|e| leaf_hash(e)));
            files.insert(
                tile.entries_path().expect("level 0"),
                encode_entry_bundle(&entries).expect("bundle"),
            );
        }
        for tile in Tile::all_for_size(n) {
            files.insert(
                tile.path(),
                Tile::encode_data(&tile.hashes_from_leaves(&leaves).expect("hashes")),
            );
        }
        let cp = Checkpoint::new(ORIGIN, n, merkle::root(&leaves)).expect("cp");
        drop(leaves);
        let start = std::time::Instant::now();
        let report = verify(&files, &cp, Some(&cp));
        let took = start.elapsed();
        eprintln!("verify_export, 1,000,000 entries of 300 bytes: {took:?}");
        assert!(report.is_ok(), "{report:?}");
    }

    fn bundle_strategy() -> impl Strategy<Value = (Vec<u8>, usize)> {
        prop_oneof![
            (proptest::collection::vec(any::<u8>(), 0..1_200), 1usize..=256),
            (
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..270),
                0usize..3,
                any::<u16>()
            )
                .prop_map(|(entries, mode, cut)| {
                    let mut bytes = encode_entry_bundle(&entries).expect("short entries");
                    let width = entries.len().clamp(1, 256);
                    match mode {
                        0 => {}
                        1 => bytes.truncate(bytes.len().saturating_sub(usize::from(cut % 50))),
                        _ => bytes.extend_from_slice(&cut.to_be_bytes()),
                    }
                    (bytes, width)
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_changed_byte_anywhere_is_located(size in 1u64..2_000, at in any::<u64>(), byte in any::<usize>(), xor in 1u8..=255) {
            let log = log(size);
            let mut files = export(&log);
            let cp = checkpoint(&log);
            let index = at % size;
            edit_bundle(&mut files, size, index, |es| {
                let e = &mut es[(index % SPAN) as usize];
                let len = e.len();
                e[byte % len] ^= xor;
            });
            let report = verify(&files, &cp, None);
            prop_assert_eq!(report.first_bad_entry, Some(index));
            prop_assert_eq!(report.verified_prefix, index);
            prop_assert_eq!(report.problems, vec![Problem::RootMismatch, Problem::EntryMismatch { index, count: 1 }]);
        }

        #[test]
        fn hash_bundle_reads_what_decode_entry_bundle_accepts((bytes, width) in bundle_strategy()) {
            let mut hashes = Vec::new();
            let end = hash_bundle(&bytes, width, &mut hashes);
            prop_assert!(hashes.len() <= width);
            match decode_entry_bundle(&bytes, Some(width as u16)) {
                Ok(entries) => {
                    prop_assert_eq!(end, BundleEnd::Complete);
                    prop_assert_eq!(&hashes, &entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>());
                }
                Err(_) => prop_assert_ne!(end, BundleEnd::Complete),
            }
            // What was read is a prefix of what a lenient reading of the bundle holds.
            if let Ok(entries) = decode_entry_bundle(&bytes, None) {
                for (h, e) in hashes.iter().zip(&entries) {
                    prop_assert_eq!(*h, leaf_hash(e));
                }
            }
        }

        #[test]
        fn any_damage_to_any_file_is_reported_never_a_panic(
            size in 0u64..700,
            pick in any::<usize>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..600),
            claimed in any::<u64>(),
            root in any::<[u8; 32]>(),
        ) {
            let log = log(size);
            let mut files = export(&log);
            let cp = checkpoint(&log);
            let mut paths: Vec<String> = files.keys().cloned().collect();
            paths.sort();
            if let Some(path) = paths.get(pick % paths.len().max(1)).cloned() {
                let changed = files[&path] != garbage;
                files.insert(path.clone(), garbage.clone());
                let report = verify(&files, &cp, None);
                prop_assert_eq!(report.is_ok(), !changed, "{}: {:?}", path, report);
                if let Some(i) = report.first_bad_entry {
                    prop_assert!(i < size);
                }
                prop_assert!(report.problems.len() <= MAX_PROBLEMS);
            }
            // Any claimed size and root over the damaged export.
            let lie = Checkpoint::new(ORIGIN, claimed, root).expect("cp");
            let report = verify(&files, &lie, Some(&cp));
            prop_assert!(!report.is_ok() || (claimed == size && &root == cp.root_hash()));
            let report = verify(&files, &cp, Some(&lie));
            prop_assert!(report.entries_read <= size);
        }
    }
}
