//! Compressed streams: gzip, bzip2, xz, zstd and lz4, as backups and rotated
//! logs are kept (`orders.csv.xz`, `shop.tar.zst`, `pg_dump … | zstd`, the
//! `3344.dat.lz4` files of a PostgreSQL 16 directory-format dump). Each is
//! known by its magic bytes, whatever its name, and read as a stream: gzip
//! by flate2, bzip2 by libbz2-rs-sys, xz by liblzma, lz4 by lz4_flex's
//! safe decoder (all Rust), zstd by the reference libzstd (the `zstd`
//! crate; ruzstd was tried and left out: it bounds no block's output, so a
//! 2 KB frame could make it allocate gigabytes). Read as text, these files
//! would have been reported `complete` with nothing found.
//!
//! A decoder's memory follows from the stream's header (the xz dictionary,
//! the zstd window): headers asking for more than the decoder is allowed
//! ([`MAX_WINDOW`]) are refused before anything is allocated, so a few
//! hostile bytes cannot claim gigabytes. Each decoder's memory is reserved
//! from the input's budget before each read, as its dictionary fills
//! ([`Codec::plan`]). Expanded bytes go through the
//! containers' ratio, budget and time limits as gzip's always did.

use std::io::{self, BufRead, BufReader, Read};

use crate::ObjectKind;
use crate::container::LimitHit;

/// Largest xz dictionary or zstd window decoded: 64 MiB, what `xz -9`
/// writes (zstd's levels up to 19 use at most 8 MiB). `zstd --long` (128
/// MiB) and `--ultra -22` need more: such a file is reported with the
/// reason, and reads once decompressed into `anshin scan -`.
pub(crate) const MAX_WINDOW: u64 = 64 << 20;

/// The dictionary or window every decoder is allowed, whatever the first
/// header asks: what `xz -6` (the default) and `zstd -19` use.
const USUAL_WINDOW: u64 = 8 << 20;

/// How much memory a decoder holds ([`Codec::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The largest xz dictionary or zstd window decoded (0: none).
    pub window: u64,
    /// Buffers and state besides it.
    fixed: u64,
    /// The dictionary's pages are memory only once written (liblzma
    /// allocates it whole and writes it as the output comes): a small
    /// stream takes little.
    grows: bool,
}

impl Plan {
    /// Memory held once `out` bytes have come out.
    pub(crate) fn memory(&self, out: u64) -> u64 {
        if !self.grows {
            return self.fixed + self.window;
        }
        self.fixed + out.max(64 << 10).next_power_of_two().min(self.window)
    }
}

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

    /// Memory a decoder holds besides its dictionary or window: flate2's
    /// state, bzip2's block (up to 900 kB, four bytes a byte), lz4_flex's
    /// block buffers (blocks of up to 4 MiB), xz's and zstd's state.
    fn fixed_memory(self) -> u64 {
        match self {
            Codec::Gzip => 64 << 10,
            Codec::Bzip2 => 4 << 20,
            Codec::Xz | Codec::Zstd => 1 << 20,
            Codec::Lz4 => 9 << 20,
        }
    }

    /// How much memory a decoder of a stream that starts with `head` may
    /// hold: its xz dictionary or zstd window as the first block or frame
    /// header says, at least [`USUAL_WINDOW`] (so that `cat a.xz b.xz`
    /// with a larger second dictionary reads on) and at most
    /// [`MAX_WINDOW`] (the most when the header is not in `head`).
    pub(crate) fn plan(self, head: &[u8]) -> Plan {
        let fixed = self.fixed_memory();
        let allowed = |window: Option<u64>| window.unwrap_or(MAX_WINDOW).clamp(USUAL_WINDOW, MAX_WINDOW);
        match self {
            Codec::Gzip | Codec::Bzip2 | Codec::Lz4 => Plan {
                window: 0,
                fixed,
                grows: false,
            },
            Codec::Xz => Plan {
                window: allowed(xz_dictionary(head)),
                fixed,
                grows: true,
            },
            // libzstd takes the window as its log.
            Codec::Zstd => Plan {
                window: allowed(zstd_window(head)).next_power_of_two().min(MAX_WINDOW),
                fixed,
                grows: false,
            },
        }
    }

    /// A reader of the stream's expanded bytes (every member or frame of a
    /// concatenated stream, as `zcat` reads them), refusing an xz
    /// dictionary or zstd window larger than `window` ([`Codec::plan`]);
    /// `Err` when the decoder cannot be set up (zstd's context is
    /// allocated).
    pub(crate) fn decoder<'r>(self, reader: impl Read + 'r, window: u64) -> io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Codec::Xz => {
                // liblzma's limit, dictionary and state together: a block
                // asking more is refused before anything is allocated.
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    window + (1 << 20),
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(WindowLimit(
                    liblzma::read::XzDecoder::new_stream(reader, stream),
                    window,
                ))
            }
            Codec::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(reader)?;
                d.window_log_max(window.max(1 << 10).ilog2())?;
                Box::new(WindowLimit(d, window))
            }
            Codec::Lz4 => Box::new(Lz4Frames(lz4_flex::frame::FrameDecoder::new(BufReader::new(
                reader,
            )))),
        })
    }
}

/// A decoder whose refusal of a dictionary or window larger than it is
/// allowed (before allocating it: liblzma's `LZMA_MEMLIMIT_ERROR`,
/// libzstd's `frameParameter_windowTooLarge`) is reported as the limit it is.
struct WindowLimit<R>(R, u64);

impl<R: Read> Read for WindowLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let xz_limit = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<liblzma::stream::Error>())
                .is_some_and(|x| matches!(x, liblzma::stream::Error::MemLimit));
            if xz_limit || e.to_string() == "Frame requires too much memory for decoding" {
                let later = if self.1 < MAX_WINDOW {
                    " (a later stream or frame asks more than the first)"
                } else {
                    ""
                };
                io::Error::other(LimitHit(format!(
                    "needs more than {} MiB of memory to decode (its dictionary or window){later}: \
                     the rest was not read; decompress it into `anshin scan -`",
                    self.1.div_ceil(1 << 20)
                )))
            } else {
                e
            }
        })
    }
}

/// The dictionary size of the first block of an xz stream: the stream
/// header (12 bytes), then the block header's flags, its optional sizes and
/// its filters, the last of which is LZMA2 with the dictionary in one byte.
fn xz_dictionary(head: &[u8]) -> Option<u64> {
    fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let mut value = 0u64;
        for k in 0..9 {
            let b = *bytes.get(*at)?;
            *at += 1;
            value |= u64::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let block = head.get(12..)?;
    if *block.first()? == 0 {
        // The index: a stream with no blocks.
        return Some(0);
    }
    let size = (usize::from(*block.first()?) + 1) * 4;
    let block = block.get(..size.min(block.len()))?;
    let flags = *block.get(1)?;
    let mut at = 2;
    for present in [flags & 0x40 != 0, flags & 0x80 != 0] {
        if present {
            varint(block, &mut at)?;
        }
    }
    let mut dictionary = None;
    for _ in 0..=(flags & 3) {
        let id = varint(block, &mut at)?;
        let props = usize::try_from(varint(block, &mut at)?).ok()?;
        let bytes = block.get(at..at.checked_add(props)?)?;
        at += props;
        dictionary = match (id, bytes) {
            (0x21, [d]) if *d <= 40 => Some(if *d == 40 {
                u64::from(u32::MAX)
            } else {
                (2 | u64::from(d & 1)) << (d / 2 + 11)
            }),
            _ => None,
        };
    }
    dictionary
}

/// The window of the first frame of a zstd stream (its window descriptor,
/// or the content size of a single-segment frame); `None` for a skippable
/// frame first.
fn zstd_window(mut head: &[u8]) -> Option<u64> {
    // Skippable frames first (pzstd writes one before each file).
    while let Some((&[m, 0x2a, 0x4d, 0x18], rest)) = head.split_first_chunk::<4>()
        && m & 0xf0 == 0x50
    {
        let size = u32::from_le_bytes(*rest.first_chunk::<4>()?);
        head = rest.get(4 + usize::try_from(size).ok()?..)?;
    }
    let (&[0x28, 0xb5, 0x2f, 0xfd], rest) = head.split_first_chunk::<4>()? else {
        return None;
    };
    let descriptor = *rest.first()?;
    if descriptor & 0x20 == 0 {
        let w = *rest.get(1)?;
        let base = 1u64 << (10 + (w >> 3));
        return Some(base + (base / 8) * u64::from(w & 7));
    }
    let dictionary_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 1 + dictionary_id;
    let field = rest.get(at..at + size_bytes)?;
    let mut le = [0u8; 8];
    le[..size_bytes].copy_from_slice(field);
    let size = u64::from_le_bytes(le);
    Some(if size_bytes == 2 { size + 256 } else { size }.max(1 << 10))
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
    fn headers_say_the_memory_a_decoder_needs() {
        let xz = |preset| {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), preset);
            io::Write::write_all(&mut e, b"text").expect("xz");
            e.finish().expect("xz")
        };
        assert_eq!(xz_dictionary(&xz(0)), Some(256 << 10));
        assert_eq!(xz_dictionary(&xz(6)), Some(8 << 20));
        assert_eq!(xz_dictionary(&xz(9)), Some(64 << 20));
        // xz's dictionary grows with the output, by doubling.
        let plan = Codec::Xz.plan(&xz(9));
        assert_eq!(plan.window, 64 << 20);
        assert_eq!(plan.memory(0), (1 << 20) + (64 << 10));
        assert_eq!(plan.memory(5 << 20), (1 << 20) + (8 << 20));
        assert_eq!(plan.memory(1 << 30), (1 << 20) + (64 << 20));
        // At least the usual window, so that a later stream may ask more.
        assert_eq!(Codec::Xz.plan(&xz(0)).window, 8 << 20);
        assert_eq!(Codec::Xz.plan(&xz(0)).memory(1 << 30), (1 << 20) + (8 << 20));
        // Level 3 streamed: a 2 MiB window.
        let streamed = zstd::stream::encode_all(&[7u8; 5000][..], 3).expect("zstd");
        assert_eq!(zstd_window(&streamed), Some(2 << 20));
        // Single segment: the content size (two bytes hold it less 256).
        let one_shot = zstd::bulk::compress(&[7u8; 5000][..], 3).expect("zstd");
        assert_eq!(zstd_window(&one_shot), Some(5000));
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x88, 0x13]),
            Some(5256)
        );
        // A window descriptor: 2^(10 + exponent) and eighths of it.
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x68]), Some(8 << 20));
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x6c]), Some(12 << 20));
        assert_eq!(zstd_window(&[0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]), None);
        // A skippable frame first is passed over (pzstd); none but skippable
        // frames in the head asks the most. zstd allocates its window whole.
        let mut pzstd = vec![0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 9, 9, 9, 9];
        pzstd.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x6c]);
        assert_eq!(zstd_window(&pzstd), Some(12 << 20));
        assert_eq!(Codec::Zstd.plan(&pzstd).window, 16 << 20);
        assert_eq!(Codec::Zstd.plan(&pzstd).memory(0), 17 << 20);
        assert_eq!(Codec::Zstd.plan(&[0x50, 0x2a, 0x4d, 0x18]).window, MAX_WINDOW);
        assert_eq!(Codec::Zstd.plan(&streamed).memory(1 << 30), 9 << 20);
        assert_eq!(Codec::Gzip.plan(&[0x1f, 0x8b]).memory(1 << 30), 64 << 10);
        assert_eq!(Codec::Lz4.plan(&[]).memory(0), 9 << 20);
        // A cut or damaged header asks for the most.
        assert_eq!(xz_dictionary(&xz(6)[..14]), None);
        assert_eq!(xz_dictionary(b"short"), None);
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
