//! The Merkle tree of the tamper-evident audit log, hashed exactly as RFC 9162
//! §2.1 (Certificate Transparency) and laid out as C2SP tlog-tiles.
//!
//! Using the CT tree unchanged is the point: any transparency-log tool can
//! recompute a root, check an inclusion proof or check that a later checkpoint
//! extends an earlier one, so nobody has to trust an anshin-specific verifier.
//!
//! - leaf hash = SHA-256(0x00 ‖ entry), node hash = SHA-256(0x01 ‖ left ‖ right).
//!   The prefixes keep a leaf from ever being passed off as an inner node (second
//!   preimage resistance).
//! - A tree of n > 1 leaves splits at k, the largest power of two below n; the
//!   empty tree hashes to SHA-256 of the empty string. The shape is a function of n.
//! - [`Frontier`] appends leaf hashes and gives the root for its size in
//!   O(log n) memory, so the log never needs all hashes in memory.
//! - Proofs ([`inclusion_proof`], [`consistency_proof`]) are built from perfect
//!   subtree hashes ([`NodeId`]) that a caller fetches from wherever it stores
//!   them (tiles, a database); `*_from_leaves` variants work over a slice.
//! - Verification follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 step
//!   by step and checks the proof length first, so a wrong proof fails with a
//!   precise error instead of an index panic.
//! - [`Tile`] is the tlog-tiles addressing: tiles of 256 hashes, `tile/<L>/<N>`
//!   paths with `x001/x234/067` index elements and `.p/<W>` for partial tiles,
//!   plus the entry-bundle encoding.
//!
//! Threat notes: every function that takes sizes, indexes, paths or bytes from
//! outside returns a [`MerkleError`] on bad input and never panics; arithmetic on
//! untrusted sizes is checked. Nothing here is secret: hashes and entries of the
//! audit log carry no personal data by design (customer ids are keyed HMACs).

use std::fmt;
use std::ops::Range;

use aws_lc_rs::digest;

/// A SHA-256 hash: a leaf hash, an inner node hash or a tree root.
pub type Hash = [u8; 32];

/// Length of a [`Hash`] in bytes.
pub const HASH_LEN: usize = 32;

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27,
    0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a Merkle operation failed. Carries no entry data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MerkleError {
    /// A leaf index is not below the tree size.
    IndexOutOfRange,
    /// A consistency check was asked from a larger tree to a smaller one.
    SizeOrder,
    /// A proof has more or fewer hashes than the tree sizes require.
    ProofLength,
    /// A proof was well formed but leads to a different root: the leaf, the
    /// index, the sizes, a root or the proof itself is wrong.
    RootMismatch,
    /// Fewer leaf hashes were supplied than the requested tree size or tile needs.
    NotEnoughLeaves,
    /// A node, tile level, index or width lies outside what a tree with a 64-bit
    /// size can hold, or a node is not complete in the tree it was asked about.
    NodeOutOfRange,
    /// A tile path is not in the canonical tlog-tiles form.
    TilePath,
    /// Tile data is not a whole number of hashes or does not match the tile width.
    TileData,
    /// An entry bundle is truncated, holds the wrong number of entries, or an
    /// entry is longer than the 65,535 bytes its 16-bit length prefix allows.
    EntryBundle,
    /// A [`Frontier`] was restored from a hash list that does not fit its size.
    FrontierState,
}

impl fmt::Display for MerkleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IndexOutOfRange => "leaf index is not below the tree size",
            Self::SizeOrder => "the first tree size is larger than the second",
            Self::ProofLength => "proof has the wrong number of hashes for these tree sizes",
            Self::RootMismatch => "proof does not lead to the expected root hash",
            Self::NotEnoughLeaves => "not enough leaf hashes for the requested tree size",
            Self::NodeOutOfRange => "tree node or tile coordinates are out of range",
            Self::TilePath => "tile path is not in canonical tlog-tiles form",
            Self::TileData => "tile data does not match the tile width",
            Self::EntryBundle => "entry bundle is malformed",
            Self::FrontierState => "frontier hashes do not match the tree size",
        })
    }
}

impl std::error::Error for MerkleError {}

/// The hash of a log entry as a leaf: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    to_hash(ctx.finish())
}

/// The hash of an inner node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer and one call: this is the hot path of every root,
    // and one FFI call per node is measurably cheaper than three updates.
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = 0x01;
    buf[1..1 + HASH_LEN].copy_from_slice(left);
    buf[1 + HASH_LEN..].copy_from_slice(right);
    to_hash(digest::digest(&digest::SHA256, &buf))
}

fn to_hash(d: digest::Digest) -> Hash {
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// The largest power of two strictly below `n`; `n` must be at least 2.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root hash (MTH) of a tree whose leaf hashes are `leaves`.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        frontier.push(*leaf);
    }
    frontier.root()
}

/// A perfect subtree: the `2^level` leaves starting at leaf `index << level`.
/// Level 0 nodes are leaves. These are the hashes a log stores; every other hash
/// of any tree size is computed from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0..=63).
    pub level: u8,
    /// Position among the nodes of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The leaves this node covers, or `None` if they do not fit in `u64`.
    pub fn leaf_range(&self) -> Option<Range<u64>> {
        if self.level > 63 {
            return None;
        }
        let start = u128::from(self.index) << self.level;
        let end = (u128::from(self.index) + 1) << self.level;
        Some(u64::try_from(start).ok()?..u64::try_from(end).ok()?)
    }
}

/// The perfect subtrees that make up the leaf range `lo..hi`, largest first.
/// Valid for the ranges RFC 9162 proofs use, where `lo` is a multiple of the
/// smallest power of two not below `hi - lo`.
fn range_nodes(lo: u64, hi: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut start = lo;
    let mut rest = hi - lo;
    while rest > 0 {
        let level = 63 - rest.leading_zeros();
        out.push(NodeId::new(level as u8, start >> level));
        start += 1 << level;
        rest -= 1 << level;
    }
    out
}

/// Hashes perfect subtrees (largest first) into the root of the range they span:
/// the right-most pieces combine first, as the split rule dictates.
fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)))
}

fn range_hash_from_nodes<E>(
    lo: u64,
    hi: u64,
    node: &mut impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Hash, E>
where
    E: From<MerkleError>,
{
    let hashes = range_nodes(lo, hi)
        .into_iter()
        .map(&mut *node)
        .collect::<Result<Vec<_>, E>>()?;
    Ok(fold_right(&hashes).unwrap_or(EMPTY_ROOT))
}

/// The root of a tree of `size` leaves from its perfect subtrees, fetched by
/// `node` (at most one per set bit of `size`).
pub fn root_from_nodes<E>(size: u64, mut node: impl FnMut(NodeId) -> Result<Hash, E>) -> Result<Hash, E>
where
    E: From<MerkleError>,
{
    range_hash_from_nodes(0, size, &mut node)
}

/// The ranges whose hashes form the inclusion proof of `index` in a tree of
/// `size` leaves (RFC 9162 §2.1.3.1), deepest first.
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange);
    }
    let (mut lo, mut hi) = (0u64, size);
    let mut out = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
        }
    }
    out.reverse();
    Ok(out)
}

/// The ranges whose hashes form the consistency proof from `old_size` to
/// `new_size` (RFC 9162 §2.1.4.1 SUBPROOF), in proof order. Empty when the old
/// tree is empty or the sizes are equal.
fn consistency_ranges(old_size: u64, new_size: u64) -> Result<Vec<(u64, u64)>, MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeOrder);
    }
    let mut out = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(out);
    }
    let (mut lo, mut hi) = (0u64, new_size);
    // `whole` is SUBPROOF's boolean: true while the old tree is still a complete
    // subtree on the left edge, so its root need not be sent.
    let mut whole = true;
    loop {
        if old_size == hi {
            if !whole {
                out.push((lo, hi));
            }
            break;
        }
        let k = split_point(hi - lo);
        if old_size - lo <= k {
            out.push((lo + k, hi));
            hi = lo + k;
        } else {
            out.push((lo, lo + k));
            lo += k;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, with
/// subtree hashes fetched by `node` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E>
where
    E: From<MerkleError>,
{
    inclusion_ranges(index, size)?
        .into_iter()
        .map(|(lo, hi)| range_hash_from_nodes(lo, hi, &mut node))
        .collect()
}

/// The consistency proof from the tree of `old_size` leaves to the tree of
/// `new_size` leaves, with subtree hashes fetched by `node` (RFC 9162 §2.1.4.1).
pub fn consistency_proof<E>(
    old_size: u64,
    new_size: u64,
    mut node: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E>
where
    E: From<MerkleError>,
{
    consistency_ranges(old_size, new_size)?
        .into_iter()
        .map(|(lo, hi)| range_hash_from_nodes(lo, hi, &mut node))
        .collect()
}

fn slice_range(leaves: &[Hash], lo: u64, hi: u64) -> Result<&[Hash], MerkleError> {
    let lo = usize::try_from(lo).map_err(|_| MerkleError::NotEnoughLeaves)?;
    let hi = usize::try_from(hi).map_err(|_| MerkleError::NotEnoughLeaves)?;
    leaves.get(lo..hi).ok_or(MerkleError::NotEnoughLeaves)
}

/// The hash of a perfect subtree computed from all leaf hashes.
pub fn node_from_leaves(leaves: &[Hash], node: NodeId) -> Result<Hash, MerkleError> {
    let range = node.leaf_range().ok_or(MerkleError::NodeOutOfRange)?;
    Ok(root(slice_range(leaves, range.start, range.end)?))
}

/// [`inclusion_proof`] for the tree made of all of `leaves`.
pub fn inclusion_proof_from_leaves(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    inclusion_ranges(index, size)?
        .into_iter()
        .map(|(lo, hi)| Ok(root(slice_range(leaves, lo, hi)?)))
        .collect()
}

/// [`consistency_proof`] from the first `old_size` of `leaves` to all of them.
pub fn consistency_proof_from_leaves(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    consistency_ranges(old_size, size)?
        .into_iter()
        .map(|(lo, hi)| Ok(root(slice_range(leaves, lo, hi)?)))
        .collect()
}

/// The root that an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1–4).
pub fn root_from_inclusion_proof(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    // Checking the length first turns "the proof is too short or too long" into
    // its own error; the RFC's `sn` checks below would catch it as well.
    if inclusion_ranges(index, size)?.len() != proof.len() {
        return Err(MerkleError::ProofLength);
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::ProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofLength);
    }
    Ok(r)
}

/// Checks that `leaf` is leaf number `index` of the tree of `size` leaves whose
/// root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(leaf, index, size, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the
/// tree of `old_size` leaves with root `old_root`: the log only appended
/// (RFC 9162 §2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. The empty tree is a prefix of
/// every tree, but its root must still be [`EMPTY_ROOT`] and its proof empty.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    let expected_len = consistency_ranges(old_size, new_size)?.len();
    if proof.len() != expected_len {
        return Err(MerkleError::ProofLength);
    }
    if old_size == 0 {
        return if old_root == &EMPTY_ROOT {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    // Step 2: when the old tree is a perfect subtree its root is the first hash
    // of the path, and the proof omits it.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof.iter());
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleError::ProofLength);
    };
    let mut fr = **first;
    let mut sr = **first;
    for c in rest {
        if snode == 0 {
            return Err(MerkleError::ProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofLength);
    }
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// An append-only tree kept as its right edge (a "compact range" over `0..size`):
/// one perfect-subtree hash per set bit of the size, so at most 64 hashes.
///
/// Appending costs one leaf plus, amortised, one node hash; [`Frontier::root`]
/// costs at most 63 more. The log keeps one of these in memory and restores it
/// from storage with [`Frontier::from_parts`] and [`Frontier::node_ids`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees covering `0..size`, largest (leftmost) first.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a frontier from its size and the hashes of [`Frontier::node_ids`]
    /// for that size, in that order.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, MerkleError> {
        if nodes.len() != size.count_ones() as usize {
            return Err(MerkleError::FrontierState);
        }
        Ok(Self { size, nodes })
    }

    /// The perfect subtrees whose hashes a frontier of `size` leaves holds,
    /// largest first.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored perfect-subtree hashes, in the order of [`Frontier::node_ids`].
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash.
    ///
    /// # Panics
    /// After 2^64 − 1 leaves, which no log reaches.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_, _| {});
    }

    /// Appends a leaf hash and reports every perfect subtree this completes, the
    /// leaf itself first (level 0), each with its hash. A tile writer keeps the
    /// ones whose level is a multiple of [`TILE_HEIGHT`].
    ///
    /// # Panics
    /// After 2^64 − 1 leaves, which no log reaches.
    pub fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, &Hash)) {
        let index = self.size;
        self.size = self
            .size
            .checked_add(1)
            .expect("a Merkle tree holds fewer than 2^64 leaves");
        let mut hash = leaf;
        let mut level = 0u8;
        completed(NodeId::new(0, index), &hash);
        // Each trailing one bit of the old size is a left sibling that is now
        // complete: merge it, as in binary addition with carries.
        while (index >> level) & 1 == 1 {
            let Some(left) = self.nodes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            completed(NodeId::new(level, index >> level), &hash);
        }
        self.nodes.push(hash);
    }

    /// The root hash of the tree of [`Frontier::size`] leaves.
    pub fn root(&self) -> Hash {
        fold_right(&self.nodes).unwrap_or(EMPTY_ROOT)
    }
}

/// Height of a tile: a tile is a subtree of 2^8 = 256 hashes (tlog-tiles).
pub const TILE_HEIGHT: u8 = 8;

/// Number of hashes in a full tile.
pub const TILE_WIDTH: u16 = 256;

/// Highest tile level a tree with a 64-bit size can have: level 7 holds nodes
/// of tree level 56, and 2^56 · 256 = 2^64.
pub const MAX_TILE_LEVEL: u8 = 7;

/// Largest entry an entry bundle can hold (its length prefix is 16 bits).
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// What a tile path names: hashes or the entries behind level-0 hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// `tile/<L>/<N>`: concatenated 32-byte hashes.
    Hashes,
    /// `tile/entries/<N>`: an entry bundle of 16-bit length-prefixed entries.
    Entries,
}

/// A tile: up to 256 consecutive hashes at tree level `8 · level`, the `index`-th
/// such run (tlog-tiles). A tile of `width` < 256 is partial, the right edge of
/// the tree at some size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    level: u8,
    index: u64,
    width: u16,
}

impl Tile {
    /// The tile at tile `level`, `index` with `width` hashes (1..=256).
    pub fn new(level: u8, index: u64, width: u16) -> Result<Self, MerkleError> {
        if level > MAX_TILE_LEVEL || width == 0 || width > TILE_WIDTH {
            return Err(MerkleError::NodeOutOfRange);
        }
        let tile = Self { level, index, width };
        // Every hash in the tile must cover leaves whose indexes fit in u64.
        let end = (u128::from(index) * 256 + u128::from(width)) << (8 * u32::from(level));
        if end > u128::from(u64::MAX) {
            return Err(MerkleError::NodeOutOfRange);
        }
        Ok(tile)
    }

    /// Tile level (tree level `8 · level`).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Position of the tile in its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Number of hashes (or entries) in the tile.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile holds all 256 hashes.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tree nodes whose hashes this tile holds, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + use<> {
        let level = self.level * TILE_HEIGHT;
        let first = self.index * u64::from(TILE_WIDTH);
        (0..u64::from(self.width)).map(move |i| NodeId::new(level, first + i))
    }

    /// The leaves the tile spans (its start index to its end index for its width).
    pub fn leaf_range(&self) -> Range<u64> {
        let shift = 8 * u32::from(self.level);
        let start = (self.index * u64::from(TILE_WIDTH)) << shift;
        // `new` checked that the end fits in u64.
        let end = start + (u64::from(self.width) << shift);
        start..end
    }

    /// The tiles of the tree of `size` leaves, level by level: every full tile and
    /// the partial tile (if any) of each level. Empty tiles are never listed.
    pub fn all_for_size(size: u64) -> impl Iterator<Item = Tile> {
        (0..=MAX_TILE_LEVEL).flat_map(move |level| {
            let hashes = size >> (8 * u32::from(level));
            let full = hashes / u64::from(TILE_WIDTH);
            let partial = (hashes % u64::from(TILE_WIDTH)) as u16;
            let full_tiles = (0..full).map(move |index| Tile {
                level,
                index,
                width: TILE_WIDTH,
            });
            let partial_tile = (partial > 0).then_some(Tile {
                level,
                index: full,
                width: partial,
            });
            full_tiles.chain(partial_tile)
        })
    }

    /// The tile of the tree of `size` leaves that holds `node` itself (when its
    /// level is a multiple of 8) or the hashes it is computed from, with the
    /// positions of those hashes in the tile. The tile is the full one if the
    /// tree has it, else the partial one of this size.
    pub fn containing(node: NodeId, size: u64) -> Result<(Self, Range<usize>), MerkleError> {
        let range = node.leaf_range().ok_or(MerkleError::NodeOutOfRange)?;
        if range.end > size {
            return Err(MerkleError::NodeOutOfRange);
        }
        let level = node.level / TILE_HEIGHT;
        let sub = node.level % TILE_HEIGHT;
        // Positions, at tree level 8·level, of the hashes under `node`.
        let first = node.index << sub;
        let count = 1u64 << sub;
        let index = first / u64::from(TILE_WIDTH);
        let offset = (first % u64::from(TILE_WIDTH)) as usize;
        let available = size >> (8 * u32::from(level));
        let width = (available - index * u64::from(TILE_WIDTH)).min(u64::from(TILE_WIDTH)) as u16;
        let tile = Self::new(level, index, width)?;
        Ok((tile, offset..offset + count as usize))
    }

    /// The hash of `node` from this tile's data (as [`Tile::parse_data`] returns
    /// it), recomputing the levels between stored hashes.
    pub fn node_hash(&self, data: &[Hash], node: NodeId) -> Result<Hash, MerkleError> {
        if data.len() != usize::from(self.width) {
            return Err(MerkleError::TileData);
        }
        node.leaf_range().ok_or(MerkleError::NodeOutOfRange)?;
        let level = node.level / TILE_HEIGHT;
        let sub = node.level % TILE_HEIGHT;
        // Cannot overflow: the node's leaves, a superset, fit in u64.
        let first = node.index << sub;
        let count = 1u64 << sub;
        let tile_first = self.index * u64::from(TILE_WIDTH);
        if level != self.level || first < tile_first {
            return Err(MerkleError::NodeOutOfRange);
        }
        let lo = first - tile_first;
        let hi = lo + count;
        let slice = slice_range(data, lo, hi).map_err(|_| MerkleError::NodeOutOfRange)?;
        Ok(root(slice))
    }

    /// The hashes this tile holds, computed from all leaf hashes of the tree.
    pub fn hashes_from_leaves(&self, leaves: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
        let range = self.leaf_range();
        let span = slice_range(leaves, range.start, range.end)?;
        let per_hash = 1usize << (8 * u32::from(self.level));
        Ok(span.chunks(per_hash).map(root).collect())
    }

    /// The tile's bytes: its hashes concatenated.
    pub fn encode_data(hashes: &[Hash]) -> Vec<u8> {
        hashes.concat()
    }

    /// The hashes in a tile's bytes, which must be exactly `width` hashes long.
    pub fn parse_data(&self, bytes: &[u8]) -> Result<Vec<Hash>, MerkleError> {
        if bytes.len() != usize::from(self.width) * HASH_LEN {
            return Err(MerkleError::TileData);
        }
        Ok(bytes
            .chunks_exact(HASH_LEN)
            .map(|c| {
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(c);
                h
            })
            .collect())
    }

    /// The path of this tile's hashes: `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// The path of the entry bundle behind this level-0 tile:
    /// `tile/entries/<N>[.p/<W>]`. `None` for tiles above level 0.
    pub fn entries_path(&self) -> Option<String> {
        (self.level == 0).then(|| format!("tile/entries/{}", self.suffix()))
    }

    fn suffix(&self) -> String {
        let mut out = encode_tile_index(self.index);
        if !self.is_full() {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }

    /// Parses a tile or entry-bundle path. Only the canonical form is accepted
    /// (no leading zeros or superfluous `x000/` elements), so each tile has
    /// exactly one name and a path cannot alias another file.
    pub fn parse_path(path: &str) -> Result<(TileKind, Self), MerkleError> {
        let rest = path.strip_prefix("tile/").ok_or(MerkleError::TilePath)?;
        let (kind, level, rest) = match rest.strip_prefix("entries/") {
            Some(rest) => (TileKind::Entries, 0u8, rest),
            None => {
                let (level, rest) = rest.split_once('/').ok_or(MerkleError::TilePath)?;
                (TileKind::Hashes, parse_decimal_u8(level)?, rest)
            }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, width)) => {
                let width = parse_decimal_u8(width)?;
                if width == 0 {
                    return Err(MerkleError::TilePath);
                }
                (index_part, u16::from(width))
            }
            None => (rest, TILE_WIDTH),
        };
        let index = parse_tile_index(index_part)?;
        let tile = Self::new(level, index, width).map_err(|_| MerkleError::TilePath)?;
        // Re-encoding catches every non-canonical spelling in one place.
        let canonical = match kind {
            TileKind::Hashes => tile.path(),
            TileKind::Entries => tile.entries_path().ok_or(MerkleError::TilePath)?,
        };
        if canonical != path {
            return Err(MerkleError::TilePath);
        }
        Ok((kind, tile))
    }
}

/// `1234067` → `x001/x234/067`: three-digit groups, all but the last prefixed `x`.
fn encode_tile_index(index: u64) -> String {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_tile_index(text: &str) -> Result<u64, MerkleError> {
    let parts: Vec<&str> = text.split('/').collect();
    let last = parts.len() - 1;
    let mut n: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits = if i == last {
            *part
        } else {
            part.strip_prefix('x').ok_or(MerkleError::TilePath)?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MerkleError::TilePath);
        }
        let group: u64 = digits.parse().map_err(|_| MerkleError::TilePath)?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(group))
            .ok_or(MerkleError::TilePath)?;
    }
    Ok(n)
}

fn parse_decimal_u8(text: &str) -> Result<u8, MerkleError> {
    if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MerkleError::TilePath);
    }
    text.parse().map_err(|_| MerkleError::TilePath)
}

/// Encodes entries as a tlog-tiles entry bundle: each entry prefixed with its
/// length as a big-endian `u16`.
pub fn encode_entry_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, MerkleError> {
    let total: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(total);
    for entry in entries {
        let entry = entry.as_ref();
        let len = u16::try_from(entry.len()).map_err(|_| MerkleError::EntryBundle)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries. With `width`, the bundle must hold
/// exactly that many (a full bundle holds 256).
pub fn decode_entry_bundle(bytes: &[u8], width: Option<u16>) -> Result<Vec<&[u8]>, MerkleError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<2>().ok_or(MerkleError::EntryBundle)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, tail) = tail.split_at_checked(len).ok_or(MerkleError::EntryBundle)?;
        out.push(entry);
        rest = tail;
        if out.len() > usize::from(TILE_WIDTH) {
            return Err(MerkleError::EntryBundle);
        }
    }
    match width {
        Some(w) if usize::from(w) != out.len() => Err(MerkleError::EntryBundle),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn h(hex: &str) -> Hash {
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).expect("hex");
        bytes.try_into().expect("32 bytes")
    }

    /// RFC 6962 reference test leaves, as in the Certificate Transparency test
    /// suites (transparency-dev/merkle `testonly/constants.go`).
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|x| leaf_hash(&data_encoding::HEXLOWER.decode(x.as_bytes()).expect("hex")))
        .collect()
    }

    /// Root hashes of the trees of the first 1..=8 reference leaves.
    const CT_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// The recursive definition of RFC 9162 §2.1.1, written as plainly as
    /// possible, against which everything else is checked.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => to_hash(digest::digest(&digest::SHA256, b"")),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn empty_tree_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, to_hash(digest::digest(&digest::SHA256, b"")));
        assert_eq!(
            root(&[]),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn leaf_and_node_hashes_have_their_prefixes() {
        // SHA-256(0x00): the RFC 6962 hash of the empty entry.
        assert_eq!(leaf_hash(b""), h(CT_ROOTS[0]));
        let mut buf = vec![0x01];
        buf.extend_from_slice(&[7; 32]);
        buf.extend_from_slice(&[9; 32]);
        assert_eq!(
            node_hash(&[7; 32], &[9; 32]),
            to_hash(digest::digest(&digest::SHA256, &buf))
        );
    }

    #[test]
    fn roots_match_the_rfc6962_reference_vectors() {
        let leaves = ct_leaves();
        for n in 1..=8 {
            assert_eq!(root(&leaves[..n]), h(CT_ROOTS[n - 1]), "size {n}");
            assert_eq!(naive_root(&leaves[..n]), h(CT_ROOTS[n - 1]), "size {n}");
        }
    }

    #[test]
    fn inclusion_proofs_match_the_reference_vectors() {
        // (leaf index, tree size, proof) from transparency-dev/merkle proof/verify_test.go.
        let cases: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let all = ct_leaves();
        for (index, size, expected) in cases {
            let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
            let tree = &all[..size as usize];
            assert_eq!(inclusion_proof_from_leaves(tree, index).expect("proof"), expected);
            let root = h(CT_ROOTS[size as usize - 1]);
            verify_inclusion(&all[index as usize], index, size, &expected, &root).expect("verifies");
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_vectors() {
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        let all = ct_leaves();
        for (old, new, expected) in cases {
            let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
            let proof = consistency_proof_from_leaves(&all[..new as usize], old).expect("proof");
            assert_eq!(proof, expected, "{old} -> {new}");
            let (r1, r2) = (h(CT_ROOTS[old as usize - 1]), h(CT_ROOTS[new as usize - 1]));
            verify_consistency(old, new, &r1, &r2, &expected).expect("verifies");
            if !expected.is_empty() {
                assert!(
                    verify_consistency(old, new, &r2, &r1, &expected).is_err(),
                    "swapped roots"
                );
                assert!(
                    verify_consistency(old, new, &r1, &r2, &[]).is_err(),
                    "empty proof"
                );
            }
        }
    }

    #[test]
    fn degenerate_consistency_cases() {
        let r = h(CT_ROOTS[3]);
        assert_eq!(verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 4, &EMPTY_ROOT, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 4, &r, &r, &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 4, &EMPTY_ROOT, &r, &[r]),
            Err(MerkleError::ProofLength)
        );
        assert_eq!(verify_consistency(4, 4, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(4, 4, &r, &EMPTY_ROOT, &[]),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(4, 4, &r, &r, &[r]),
            Err(MerkleError::ProofLength)
        );
        assert_eq!(verify_consistency(5, 4, &r, &r, &[]), Err(MerkleError::SizeOrder));
        assert_eq!(
            verify_inclusion(&r, 0, 0, &[], &EMPTY_ROOT),
            Err(MerkleError::IndexOutOfRange)
        );
        assert_eq!(verify_inclusion(&r, 0, 1, &[], &r), Ok(()));
        assert_eq!(
            verify_inclusion(&r, 1, 1, &[], &r),
            Err(MerkleError::IndexOutOfRange)
        );
    }

    #[test]
    fn builder_matches_the_definition_for_every_small_size() {
        let all = leaves(300);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), naive_root(&[]));
        for n in 1..=all.len() {
            frontier.push(all[n - 1]);
            assert_eq!(frontier.root(), naive_root(&all[..n]), "size {n}");
            assert_eq!(frontier.nodes().len(), n.count_ones() as usize);
            let ids = Frontier::node_ids(n as u64);
            let from_ids: Vec<Hash> = ids
                .iter()
                .map(|id| node_from_leaves(&all, *id).expect("node"))
                .collect();
            assert_eq!(frontier.nodes(), &from_ids[..]);
            let restored = Frontier::from_parts(n as u64, from_ids).expect("restore");
            assert_eq!(restored, frontier);
        }
        assert_eq!(Frontier::from_parts(3, vec![]), Err(MerkleError::FrontierState));
    }

    #[test]
    fn push_with_reports_every_completed_subtree() {
        let all = leaves(64);
        let mut frontier = Frontier::new();
        let mut seen = Vec::new();
        for leaf in &all {
            frontier.push_with(*leaf, |id, hash| seen.push((id, *hash)));
        }
        // A tree of 64 leaves has 127 perfect subtrees.
        assert_eq!(seen.len(), 127);
        for (id, hash) in seen {
            assert_eq!(node_from_leaves(&all, id), Ok(hash), "{id:?}");
        }
    }

    /// Every proof for every index and size pair up to 40 verifies, and tampering
    /// with the leaf, the index, either size, a root or any proof hash fails.
    #[test]
    fn every_proof_verifies_and_any_change_fails() {
        let all = leaves(41);
        let roots: Vec<Hash> = (0..=all.len()).map(|n| naive_root(&all[..n])).collect();
        for size in 1..=40u64 {
            let tree = &all[..size as usize];
            let root = roots[size as usize];
            for index in 0..size {
                let leaf = &all[index as usize];
                let proof = inclusion_proof_from_leaves(tree, index).expect("proof");
                assert_eq!(verify_inclusion(leaf, index, size, &proof, &root), Ok(()));
                assert!(
                    verify_inclusion(&all[(index as usize + 1) % 40], index, size, &proof, &root).is_err()
                );
                if size > 1 {
                    assert!(verify_inclusion(leaf, (index + 1) % size, size, &proof, &root).is_err());
                }
                assert!(verify_inclusion(leaf, index, size + 1, &proof, &roots[size as usize + 1]).is_err());
                assert!(verify_inclusion(leaf, index, size, &proof, &roots[size as usize - 1]).is_err());
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][0] ^= 8;
                    assert_eq!(
                        verify_inclusion(leaf, index, size, &bad, &root),
                        Err(MerkleError::RootMismatch)
                    );
                    let mut short = proof.clone();
                    short.remove(i);
                    assert_eq!(
                        verify_inclusion(leaf, index, size, &short, &root),
                        Err(MerkleError::ProofLength)
                    );
                }
                let mut long = proof.clone();
                long.push(root);
                assert_eq!(
                    verify_inclusion(leaf, index, size, &long, &root),
                    Err(MerkleError::ProofLength)
                );
            }
            for old in 1..=size {
                let proof = consistency_proof_from_leaves(tree, old).expect("proof");
                let old_root = roots[old as usize];
                assert_eq!(
                    verify_consistency(old, size, &old_root, &root, &proof),
                    Ok(()),
                    "{old}->{size}"
                );
                if old == size {
                    continue;
                }
                assert!(verify_consistency(old, size, &roots[old as usize - 1], &root, &proof).is_err());
                assert!(verify_consistency(old, size, &old_root, &roots[size as usize - 1], &proof).is_err());
                assert!(verify_consistency(old - 1, size, &roots[old as usize - 1], &root, &proof).is_err());
                assert!(
                    verify_consistency(old, size + 1, &old_root, &roots[size as usize + 1], &proof).is_err()
                );
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][31] ^= 16;
                    assert!(verify_consistency(old, size, &old_root, &root, &bad).is_err());
                }
                let mut long = proof.clone();
                long.insert(0, proof[0]);
                assert_eq!(
                    verify_consistency(old, size, &old_root, &root, &long),
                    Err(MerkleError::ProofLength)
                );
            }
        }
    }

    #[test]
    fn proofs_from_stored_nodes_equal_proofs_from_leaves() {
        let all = leaves(1000);
        let fetch = |id: NodeId| node_from_leaves(&all, id);
        for (index, size) in [(0u64, 1u64), (999, 1000), (511, 1000), (256, 257), (3, 700)] {
            assert_eq!(
                inclusion_proof(index, size, fetch),
                inclusion_proof_from_leaves(&all[..size as usize], index)
            );
        }
        for (old, new) in [(1u64, 1000u64), (256, 1000), (257, 999), (700, 701), (1000, 1000)] {
            assert_eq!(
                consistency_proof(old, new, fetch),
                consistency_proof_from_leaves(&all[..new as usize], old)
            );
        }
        assert_eq!(root_from_nodes(1000, fetch), Ok(naive_root(&all)));
        assert_eq!(root_from_nodes(0, fetch), Ok(EMPTY_ROOT));
        assert_eq!(inclusion_proof(5, 5, fetch), Err(MerkleError::IndexOutOfRange));
        assert_eq!(consistency_proof(6, 5, fetch), Err(MerkleError::SizeOrder));
    }

    /// One million leaves: the builder agrees with the recursive definition at
    /// scale, and the time it takes is printed (`-- --nocapture` to see it).
    #[test]
    fn builder_handles_a_million_leaves() {
        let start = std::time::Instant::now();
        let all = leaves(1_000_000);
        let hashed = start.elapsed();
        let start = std::time::Instant::now();
        let mut frontier = Frontier::new();
        for leaf in &all {
            frontier.push(*leaf);
        }
        let root = frontier.root();
        let built = start.elapsed();
        eprintln!("1,000,000 leaves: leaf hashes {hashed:?}, frontier appends + root {built:?}");
        assert_eq!(root, naive_root(&all));
        // 1,000,000 = 0b11110100001001000000: seven perfect subtrees.
        assert_eq!(frontier.nodes().len(), 7);
        let node_ids = Frontier::node_ids(1_000_000);
        assert_eq!(node_ids[0], NodeId::new(19, 0));
        assert_eq!(
            root_from_nodes::<MerkleError>(1_000_000, |id| {
                let pos = node_ids
                    .iter()
                    .position(|n| *n == id)
                    .ok_or(MerkleError::NodeOutOfRange)?;
                Ok(frontier.nodes()[pos])
            }),
            Ok(root)
        );
    }

    #[test]
    fn tile_paths_follow_tlog_tiles() {
        let t = |l, n, w| Tile::new(l, n, w).expect("tile");
        assert_eq!(t(0, 0, 256).path(), "tile/0/000");
        assert_eq!(t(0, 1234067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(t(1, 5, 17).path(), "tile/1/005.p/17");
        assert_eq!(t(2, 1000, 256).path(), "tile/2/x001/000");
        assert_eq!(
            t(0, 1234067, 1).entries_path().as_deref(),
            Some("tile/entries/x001/x234/067.p/1")
        );
        assert_eq!(t(1, 0, 256).entries_path(), None);
        assert_eq!(
            t(0, u64::MAX / 256 - 1, 256).path(),
            "tile/0/x072/x057/x594/x037/x927/934"
        );

        for path in [
            "tile/0/000",
            "tile/0/x001/x234/067",
            "tile/1/005.p/17",
            "tile/entries/x001/x234/067.p/1",
            "tile/7/000.p/255",
        ] {
            let (kind, tile) = Tile::parse_path(path).expect(path);
            let again = match kind {
                TileKind::Hashes => tile.path(),
                TileKind::Entries => tile.entries_path().expect("level 0"),
            };
            assert_eq!(again, path);
        }
        for bad in [
            "",
            "tile/",
            "tile/0/",
            "tile/0/0",
            "tile/0/01",
            "tile/00/000",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001/02",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/017",
            "tile/0/000.p/",
            "tile/8/000",
            "tile/64/000",
            "tile/0/x1/000",
            "tile/-1/000",
            "tile/0/+01",
            "tiles/0/000",
            "tile/entries/000.p/256",
            "tile/entries/1/000",
            "tile/0/000/",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert_eq!(Tile::parse_path(bad), Err(MerkleError::TilePath), "{bad:?}");
        }
    }

    #[test]
    fn tiles_for_a_size_match_the_spec_example() {
        // tlog-tiles: "a tree of size 70,000 will be represented by 273 full level
        // 0 tiles, one partial level 0 tile of width 112, one full level 1 tile,
        // one partial level 1 tile of width 17, and one partial level 2 tile of
        // width 1."
        let tiles: Vec<Tile> = Tile::all_for_size(70_000).collect();
        let level = |l| tiles.iter().filter(move |t| t.level() == l);
        assert_eq!(level(0).filter(|t| t.is_full()).count(), 273);
        assert_eq!(level(0).find(|t| !t.is_full()).map(|t| t.width()), Some(112));
        assert_eq!(level(1).filter(|t| t.is_full()).count(), 1);
        assert_eq!(level(1).find(|t| !t.is_full()).map(|t| t.width()), Some(17));
        assert_eq!(
            level(2).map(|t| (t.index(), t.width())).collect::<Vec<_>>(),
            vec![(0, 1)]
        );
        assert_eq!(tiles.len(), 273 + 1 + 1 + 1 + 1);
        // "a tree of size 256 will be represented by a full level 0 tile and a
        // partial level 1 tile of width 1."
        let tiles: Vec<Tile> = Tile::all_for_size(256).collect();
        assert_eq!(
            tiles,
            vec![Tile::new(0, 0, 256).expect("t"), Tile::new(1, 0, 1).expect("t")]
        );
        assert_eq!(Tile::all_for_size(0).count(), 0);
    }

    #[test]
    fn tile_hashes_rebuild_any_node_and_proof() {
        let size = 70_000u64;
        let all = leaves(size as usize);
        let mut frontier = Frontier::new();
        // Written the way a log would: keep completed nodes on tile levels.
        let mut stored = std::collections::HashMap::new();
        for leaf in &all {
            frontier.push_with(*leaf, |id, hash| {
                if id.level % TILE_HEIGHT == 0 {
                    stored.insert(id, *hash);
                }
            });
        }
        let mut tiles = std::collections::HashMap::new();
        for tile in Tile::all_for_size(size) {
            let data = tile.hashes_from_leaves(&all).expect("hashes");
            assert_eq!(data.len(), usize::from(tile.width()));
            for (id, hash) in tile.nodes().zip(&data) {
                assert_eq!(stored.get(&id), Some(hash), "{id:?}");
            }
            let bytes = Tile::encode_data(&data);
            assert_eq!(tile.parse_data(&bytes).as_ref(), Ok(&data));
            assert_eq!(tile.parse_data(&bytes[1..]), Err(MerkleError::TileData));
            tiles.insert(tile, data);
        }
        let from_tiles = |id: NodeId| -> Result<Hash, MerkleError> {
            let (tile, _) = Tile::containing(id, size)?;
            tile.node_hash(tiles.get(&tile).ok_or(MerkleError::NodeOutOfRange)?, id)
        };
        assert_eq!(root_from_nodes(size, from_tiles), Ok(frontier.root()));
        assert_eq!(root_from_nodes(size, from_tiles), Ok(naive_root(&all)));
        for (index, old) in [(0u64, 1u64), (69_999, 65_536), (12_345, 70_000), (65_535, 256)] {
            assert_eq!(
                inclusion_proof(index, size, from_tiles),
                inclusion_proof_from_leaves(&all, index)
            );
            assert_eq!(
                consistency_proof(old, size, from_tiles),
                consistency_proof_from_leaves(&all, old)
            );
        }
        let (tile, range) = Tile::containing(NodeId::new(3, 9), size).expect("contained");
        assert_eq!(
            (tile.level(), tile.index(), tile.width(), range),
            (0, 0, 256, 72..80)
        );
        assert!(Tile::containing(NodeId::new(0, size), size).is_err());
        assert!(Tile::containing(NodeId::new(64, 0), size).is_err());
    }

    #[test]
    fn entry_bundles_round_trip_and_reject_garbage() {
        let entries: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 300]];
        let bundle = encode_entry_bundle(&entries).expect("encode");
        assert_eq!(&bundle[..5], &[0, 0, 0, 1, b'a']);
        let decoded = decode_entry_bundle(&bundle, Some(3)).expect("decode");
        assert_eq!(decoded, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(
            decode_entry_bundle(&bundle, Some(4)),
            Err(MerkleError::EntryBundle)
        );
        assert_eq!(
            decode_entry_bundle(&bundle[..bundle.len() - 1], None),
            Err(MerkleError::EntryBundle)
        );
        assert_eq!(decode_entry_bundle(&[0], None), Err(MerkleError::EntryBundle));
        assert_eq!(
            encode_entry_bundle(&[vec![0u8; MAX_ENTRY_LEN + 1]]),
            Err(MerkleError::EntryBundle)
        );
        assert!(encode_entry_bundle(&[vec![0u8; MAX_ENTRY_LEN]]).is_ok());
        assert_eq!(
            decode_entry_bundle(&[0; 2 * 257], None),
            Err(MerkleError::EntryBundle)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_trees_agree_and_proofs_verify(size in 1usize..2_000, a in any::<u64>(), b in any::<u64>()) {
            let all = leaves(size);
            let root = root(&all);
            prop_assert_eq!(root, naive_root(&all));
            let index = a % size as u64;
            let proof = inclusion_proof_from_leaves(&all, index).expect("proof");
            prop_assert_eq!(verify_inclusion(&all[index as usize], index, size as u64, &proof, &root), Ok(()));
            let old = 1 + b % size as u64;
            let proof = consistency_proof_from_leaves(&all, old).expect("proof");
            let old_root = naive_root(&all[..old as usize]);
            prop_assert_eq!(verify_consistency(old, size as u64, &old_root, &root, &proof), Ok(()));
        }

        #[test]
        fn arbitrary_proofs_never_panic(
            index in any::<u64>(),
            size in any::<u64>(),
            old in any::<u64>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
            a in any::<[u8; 32]>(),
            b in any::<[u8; 32]>(),
        ) {
            let _ = verify_inclusion(&a, index, size, &proof, &b);
            let _ = verify_consistency(old.min(size), size, &a, &b, &proof);
            let _ = verify_consistency(old, size, &a, &b, &proof);
            let _ = verify_inclusion(&a, index % 64, size % 64, &proof, &b);
            let _ = verify_consistency(old % 64, size % 64, &a, &b, &proof);
        }

        #[test]
        fn arbitrary_tile_input_never_panics(
            path in "(tile/)?(entries/|[0-9]{0,3}/)?(x[0-9]{1,4}/){0,8}[0-9]{0,4}(\\.p/[0-9]{0,4})?",
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            level in any::<u8>(),
            index in any::<u64>(),
            size in any::<u64>(),
        ) {
            if let Ok((kind, tile)) = Tile::parse_path(&path) {
                let again = match kind {
                    TileKind::Hashes => tile.path(),
                    TileKind::Entries => tile.entries_path().expect("level 0"),
                };
                prop_assert_eq!(again, path.clone());
            }
            let _ = Tile::parse_path(&String::from_utf8_lossy(&bytes));
            let _ = decode_entry_bundle(&bytes, None);
            let node = NodeId::new(level, index);
            let _ = node.leaf_range();
            if let Ok((tile, _)) = Tile::containing(node, size) {
                let _ = tile.leaf_range();
                let _ = tile.node_hash(&vec![[0; 32]; usize::from(tile.width())], node);
            }
        }
    }
}
