//! Compressed streams: gzip, bzip2, xz, zstd and lz4, as backups and rotated
//! logs are kept (`orders.csv.xz`, `shop.tar.zst`, `pg_dump … | zstd`, the
//! `3344.dat.lz4` files of a PostgreSQL 16 directory-format dump). Each is
//! known by its magic bytes, whatever its name, and read as a stream by a
//! pure-Rust decoder (no C library to build or patch): flate2, bzip2's
//! libbz2-rs-sys, lzma-rust2, ruzstd and lz4_flex. Read as text, they would
//! have been reported `complete` with nothing found.
//!
//! A decoder's memory follows from the stream's header (the xz dictionary,
//! the zstd window): headers asking for more than [`MAX_WINDOW`] are refused
//! before anything is allocated, so a few hostile bytes cannot claim
//! gigabytes. Expanded bytes go through the containers' ratio, budget and
//! time limits as gzip's always did.

use std::io::{self, BufRead, BufReader, Read};

use crate::ObjectKind;
use crate::container::LimitHit;

/// Largest xz dictionary or zstd window decoded: 64 MiB, what `xz -9` and
/// `zstd -19 --long` write. `zstd --ultra -22` and `--long=28` and above
/// need more and are reported with the reason.
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
    /// concatenated stream, as `zcat` reads them).
    pub(crate) fn decoder<'r>(self, reader: impl Read + 'r) -> Box<dyn Read + 'r> {
        match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Codec::Xz => Box::new(WindowLimit(lzma_rust2::XzReader::new_mem_limit(
                reader,
                true,
                // The limit of a block's decoder, in KiB, dictionary included:
                // a little over the dictionary for the decoder's own state.
                u32::try_from((MAX_WINDOW >> 10) + 1024).unwrap_or(u32::MAX),
            ))),
            Codec::Zstd => Box::new(WindowLimit(ZstdFrames::new(reader))),
            Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(reader)),
        }
    }
}

/// A decoder whose refusal of a large dictionary or window (an
/// out-of-memory error before allocating it) is reported as the limit it is.
struct WindowLimit<R>(R);

impl<R: Read> Read for WindowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::OutOfMemory {
                io::Error::other(LimitHit(format!(
                    "needs more than {} MiB of memory to decode (its dictionary or window): the rest was not read",
                    MAX_WINDOW >> 20
                )))
            } else {
                e
            }
        })
    }
}

/// Every frame of a zstd stream (ruzstd's decoder reads one), skippable
/// frames passed over. Each frame header is read here, whole, and its window
/// checked against [`MAX_WINDOW`] before the decoder sees it: ruzstd sizes
/// its buffers from the window and checks no bound on a decoder's first
/// frame.
struct ZstdFrames<R> {
    source: BufReader<R>,
    decoder: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

/// The longest frame header: magic, descriptor, window descriptor, a
/// four-byte dictionary id and an eight-byte content size.
const ZSTD_MAX_HEADER: usize = 18;

impl<R: Read> ZstdFrames<R> {
    fn new(reader: R) -> Self {
        Self {
            source: BufReader::new(reader),
            decoder: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; `false` at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            let mut header = [0u8; ZSTD_MAX_HEADER];
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            self.source.read_exact(&mut header[..5])?;
            if let [m, 0x2a, 0x4d, 0x18, ..] = header
                && m & 0xf0 == 0x50
            {
                // A skippable frame: a 32-bit length, then that many bytes.
                self.source.read_exact(&mut header[5..8])?;
                let skip = u64::from(u32::from_le_bytes([header[4], header[5], header[6], header[7]]));
                let skipped = io::copy(&mut (&mut self.source).take(skip), &mut io::sink())?;
                if skipped < skip {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "zstd stream truncated in a skippable frame",
                    ));
                }
                continue;
            }
            let len = zstd_header_len(header[4]);
            self.source.read_exact(&mut header[5..len])?;
            let window = zstd_window(&header[..len]);
            if window > MAX_WINDOW {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("zstd frame with a {} MiB window", window >> 20),
                ));
            }
            // A wrong magic number is the decoder's error to report.
            self.decoder.reset(&header[..len]).map_err(io::Error::other)?;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            let d = &mut self.decoder;
            while d.can_collect() < buf.len() && !d.is_finished() {
                let wanted = buf.len() - d.can_collect();
                d.decode_blocks(
                    &mut self.source,
                    ruzstd::decoding::BlockDecodingStrategy::UptoBytes(wanted),
                )
                .map_err(io::Error::other)?;
            }
            let n = d.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if d.is_finished() && d.can_collect() == 0 {
                self.in_frame = false;
            }
        }
    }
}

/// The length of a zstd frame header from its descriptor byte, the fifth
/// (RFC 8878 3.1.1.1): magic and descriptor, the window descriptor unless
/// the frame is a single segment, the dictionary id and the content size.
fn zstd_header_len(descriptor: u8) -> usize {
    let single_segment = descriptor & 0x20 != 0;
    let window = usize::from(!single_segment);
    let dict_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    5 + window + dict_id + content
}

/// The window size a whole zstd frame header declares (RFC 8878 3.1.1.1):
/// the window descriptor's, or for a single-segment frame its content size.
fn zstd_window(header: &[u8]) -> u64 {
    let descriptor = header.get(4).copied().unwrap_or(0);
    if descriptor & 0x20 == 0 {
        let w = header.get(5).copied().unwrap_or(0);
        let base = 1u64 << (10 + u32::from(w >> 3));
        return base + (base >> 3) * u64::from(w & 7);
    }
    let dict_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let field = header.get(5 + dict_id..).unwrap_or_default();
    let mut bytes = [0u8; 8];
    let n = field.len().min(8);
    bytes[..n].copy_from_slice(&field[..n]);
    let size = u64::from_le_bytes(bytes);
    // A two-byte content size is stored less 256.
    if field.len() == 2 { size + 256 } else { size }
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
    fn zstd_headers_give_their_length_and_window() {
        let magic = [0x28, 0xb5, 0x2f, 0xfd];
        let header = |rest: &[u8]| [&magic[..], rest].concat();
        // Window descriptor: exponent 13 (log 23), mantissa 0: 8 MiB.
        assert_eq!(zstd_header_len(0x00), 6);
        assert_eq!(zstd_window(&header(&[0x00, 13 << 3])), 8 << 20);
        // Mantissa 4: 8 MiB + 4/8.
        assert_eq!(zstd_window(&header(&[0x00, 13 << 3 | 4])), 12 << 20);
        // Single segment, one-byte content size.
        assert_eq!(zstd_header_len(0x20), 6);
        assert_eq!(zstd_window(&header(&[0x20, 200])), 200);
        // Single segment, two-byte size (plus 256), after a one-byte dictionary id.
        assert_eq!(zstd_header_len(0x61), 8);
        assert_eq!(zstd_window(&header(&[0x61, 9, 0x00, 0x01])), 512);
        // Eight-byte size, four-byte dictionary id, window descriptor: the longest.
        assert_eq!(zstd_header_len(0xc3), ZSTD_MAX_HEADER);
        // Four-byte size in a single segment.
        assert_eq!(zstd_header_len(0xa0), 9);
        assert_eq!(zstd_window(&header(&[0xa0, 0, 0, 0, 1])), 1 << 24);
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
