//! One entry of a tree as a baseline records it.

use serde::{Deserialize, Serialize};

use crate::facts::PageFacts;

/// What kind of entry a path is. Only regular files are ever opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file: hashed.
    File,
    /// A directory.
    Dir,
    /// A symbolic link: its target is recorded, never followed.
    Symlink,
    /// A named pipe (never opened: a read would wait for a writer).
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
}

impl FileKind {
    /// The kind of a `symlink_metadata` result.
    pub fn of(file_type: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_dir() {
            Self::Dir
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_socket() {
            Self::Socket
        } else if file_type.is_block_device() {
            Self::BlockDevice
        } else if file_type.is_char_device() {
            Self::CharDevice
        } else {
            Self::File
        }
    }

    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::BlockDevice => "blockdevice",
            Self::CharDevice => "chardevice",
        }
    }
}

/// One recorded entry. `path` is relative to its root (see [`crate::path_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Index of the root in the baseline's `roots`.
    pub root: u16,
    /// Path below the root, `/`-separated.
    pub path: String,
    /// Entry type.
    pub kind: FileKind,
    /// Size in bytes (of the link text for a link).
    pub size: u64,
    /// Permission bits and the set-id and sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    /// Inode change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i128,
    /// Device and inode: with size and the two times, what lets a check trust
    /// a file unchanged without reading it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// BLAKE3 of the contents (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// SHA-256 of the contents (regular files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where a symbolic link points (as written; never resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// External scripts and CSP of a web page or server config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<PageFacts>,
}

impl Record {
    /// True when the metadata a check trusts is the same: same inode, size,
    /// modification and change time. Writing a file changes its ctime, and
    /// ctime cannot be set from user space, so an unchanged ctime means the
    /// contents were not written since (short of a clock or raw-disk attack,
    /// which the periodic `--full` check covers).
    pub fn same_stat(&self, other: &Record) -> bool {
        self.kind == other.kind
            && self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.ctime_ns == other.ctime_ns
            && self.ino == other.ino
            && self.dev == other.dev
    }
}
