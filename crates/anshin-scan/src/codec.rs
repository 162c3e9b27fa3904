//! Compressed streams: gzip, bzip2, xz, zstd and lz4, as backups and rotated
//! logs are kept (`orders.csv.xz`, `shop.tar.zst`, `pg_dump … | zstd`, the
//! `3344.dat.lz4` files of a PostgreSQL 16 directory-format dump). Each is
//! known by its magic bytes, whatever its name, and read as a stream: gzip
//! by flate2, bzip2 by libbz2-rs-sys, xz by lzma-rust2, lz4 by lz4_flex's
//! safe decoder (all Rust), zstd by the reference libzstd (the `zstd`
//! crate; ruzstd was tried and left out: it bounds no block's output, so a
//! 2 KB frame could make it allocate gigabytes). Read as text, these files
//! would have been reported `complete` with nothing found.
//!
//! A decoder's memory follows from the stream's header (the xz dictionary,
//! the zstd window): headers asking for more than [`MAX_WINDOW`] are refused
//! before anything is allocated, so a few hostile bytes cannot claim
//! gigabytes. Expanded bytes go through the containers' ratio, budget and
//! time limits as gzip's always did.

use std::io::{self, BufRead, BufReader, Read};

use crate::ObjectKind;
use crate::container::LimitHit;

/// Largest xz dictionary or zstd window decoded: 64 MiB, what `xz -9`
/// writes (zstd's levels up to 19 use at most 8 MiB). `zstd --long` (128
/// MiB) and `--ultra -22` need more: such a file is reported with the
/// reason, and reads once decompressed into `anshin scan -`.
pub(crate) const MAX_WINDOW: u64 = 64 << 20;

/// A compression format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Lz4,
}

impl Codec {
    pub(crate) const ALL: [Codec; 5] = [Codec::Gzip, Codec::Bzip2, Codec::Xz, Codec::Zstd, Codec::Lz4];

    /// The format whose magic bytes start `head`.
    pub(crate) fn sniff(head: &[u8]) -> Option<Codec> {
        const BZIP2_BLOCK: &[u8] = &[0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
        const BZIP2_END: &[u8] = &[0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
        match head {
            [0x1f, 0x8b, ..] => Some(Codec::Gzip),
            // "BZh", the block size 1–9, then a block or the end of the stream.
            [b'B', b'Z', b'h', b'1'..=b'9', rest @ ..]
                if rest.starts_with(BZIP2_BLOCK) || rest.starts_with(BZIP2_END) =>
            {
                Some(Codec::Bzip2)
            }
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Codec::Xz),
            // A frame, or a skippable frame (magic 0x184D2A50–5F).
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Codec::Zstd),
            [m, 0x2a, 0x4d, 0x18, ..] if m & 0xf0 == 0x50 => Some(Codec::Zstd),
            [0x04, 0x22, 0x4d, 0x18, ..] => Some(Codec::Lz4),
            _ => None,
        }
    }

    pub(crate) fn kind(self) -> ObjectKind {
        match self {
            Codec::Gzip => ObjectKind::Gzip,
            Codec::Bzip2 => ObjectKind::Bzip2,
            Codec::Xz => ObjectKind::Xz,
            Codec::Zstd => ObjectKind::Zstd,
            Codec::Lz4 => ObjectKind::Lz4,
        }
    }

    /// The file name suffix of the format, and the suffix of a compressed
    /// tar (`x.tgz`).
    fn suffixes(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Codec::Gzip => (".gz", &[".tgz"]),
            Codec::Bzip2 => (".bz2", &[".tbz2", ".tbz"]),
            Codec::Xz => (".xz", &[".txz"]),
            Codec::Zstd => (".zst", &[".tzst"]),
            Codec::Lz4 => (".lz4", &[]),
        }
    }

    /// The name of the stream's content, from the compressed object's path:
    /// `logs/app.log.xz` → `app.log`, `x.tgz` → `x.tar`, otherwise the
    /// base name with `.out`.
    pub(crate) fn inner_name(self, path: &str) -> String {
        let base = path.rsplit(['/', '\\', '!']).next().unwrap_or(path);
        let lower = base.to_ascii_lowercase();
        let (suffix, tars) = self.suffixes();
        if let Some(tar) = tars.iter().find(|t| lower.ends_with(**t)) {
            format!("{}.tar", &base[..base.len() - tar.len()])
        } else if lower.ends_with(suffix) && base.len() > suffix.len() {
            base[..base.len() - suffix.len()].to_owned()
        } else {
            format!("{base}.out")
        }
    }

    /// The format a file name's last suffix names (`3344.dat.lz4`), and the
    /// name without it.
    pub(crate) fn strip_suffix(name: &str) -> Option<(Codec, &str)> {
        Codec::ALL
            .into_iter()
            .find_map(|c| Some((c, name.strip_suffix(c.suffixes().0)?)))
    }

    /// A reader of the stream's expanded bytes (every member or frame of a
    /// concatenated stream, as `zcat` reads them); `Err` when the decoder
    /// cannot be set up (zstd's context is allocated).
    pub(crate) fn decoder<'r>(self, reader: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Codec::Xz => Box::new(WindowLimit(lzma_rust2::XzReader::new_mem_limit(
                reader,
                true,
                // The limit of a block's decoder, in KiB, dictionary included:
                // a little over the dictionary for the decoder's own state.
                u32::try_from((MAX_WINDOW >> 10) + 1024).unwrap_or(u32::MAX),
            ))),
            Codec::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(reader)?;
                d.window_log_max(MAX_WINDOW.ilog2())?;
                Box::new(WindowLimit(d))
            }
            Codec::Lz4 => Box::new(Lz4Frames(lz4_flex::frame::FrameDecoder::new(BufReader::new(
                reader,
            )))),
        })
    }
}

/// A decoder whose refusal of a large dictionary or window (before
/// allocating it: lzma-rust2's out-of-memory error, libzstd's
/// `frameParameter_windowTooLarge`) is reported as the limit it is.
struct WindowLimit<R>(R);

impl<R: Read> Read for WindowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::OutOfMemory
                || e.to_string() == "Frame requires too much memory for decoding"
            {
                io::Error::other(LimitHit(format!(
                    "needs more than {} MiB of memory to decode (its dictionary or window): the rest \
                     was not read; decompress it into `anshin scan -`",
                    MAX_WINDOW >> 20
                )))
            } else {
                e
            }
        })
    }
}

/// lz4_flex's frame decoder returns no bytes at the end of each frame and
/// for an empty block: read on while its input holds more (`cat a.lz4
/// b.lz4`), as the `lz4` tool does.
struct Lz4Frames<R: Read>(lz4_flex::frame::FrameDecoder<BufReader<R>>);

impl<R: Read> Read for Lz4Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n > 0 || buf.is_empty() || self.0.get_mut().fill_buf()?.is_empty() {
                return Ok(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_names() {
        assert_eq!(Codec::Gzip.inner_name("logs/app.log.gz"), "app.log");
        assert_eq!(Codec::Gzip.inner_name("a.zip!x.TGZ"), "x.tar");
        assert_eq!(Codec::Gzip.inner_name("stdin"), "stdin.out");
        assert_eq!(Codec::Gzip.inner_name(".gz"), ".gz.out");
        assert_eq!(Codec::Xz.inner_name("backup/orders.csv.xz"), "orders.csv");
        assert_eq!(Codec::Bzip2.inner_name("shop.tbz2"), "shop.tar");
        assert_eq!(Codec::Zstd.inner_name("shop.tar.zst"), "shop.tar");
        assert_eq!(Codec::Zstd.inner_name("x.tzst"), "x.tar");
        assert_eq!(Codec::Lz4.inner_name("3344.dat.lz4"), "3344.dat");
        assert_eq!(Codec::Xz.inner_name("renamed.bin"), "renamed.bin.out");
        assert_eq!(
            Codec::strip_suffix("3344.dat.zst"),
            Some((Codec::Zstd, "3344.dat"))
        );
        assert_eq!(Codec::strip_suffix("3344.dat"), None);
    }

    #[test]
    fn magic_bytes() {
        assert_eq!(Codec::sniff(&[0x1f, 0x8b, 8]), Some(Codec::Gzip));
        assert_eq!(Codec::sniff(b"BZh91AY&SY"), Some(Codec::Bzip2));
        assert_eq!(Codec::sniff(b"BZh9 is text"), None);
        assert_eq!(Codec::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Some(Codec::Xz));
        assert_eq!(Codec::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Codec::Zstd));
        assert_eq!(Codec::sniff(&[0x50, 0x2a, 0x4d, 0x18, 0]), Some(Codec::Zstd));
        assert_eq!(Codec::sniff(&[0x04, 0x22, 0x4d, 0x18, 0]), Some(Codec::Lz4));
        assert_eq!(Codec::sniff(b"hello"), None);
    }
}
