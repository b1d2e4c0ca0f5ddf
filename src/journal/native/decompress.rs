//! Decompression of journal DATA object payloads.
//!
//! journald compresses a DATA object's payload when that pays, and says how
//! in the object header's flags byte. The payload is then, as systemd's
//! compress.c writes it:
//!
//! - XZ: one complete .xz stream (LZMA2, no integrity check);
//! - LZ4: the uncompressed size as a little-endian u64, then one LZ4 *block*
//!   (not the LZ4 frame format);
//! - ZSTD: one zstd frame.
//!
//! The payload comes from a file, so it is untrusted: every decoder here is
//! pure Rust without unsafe code, and each is bounded by the caller's `max`
//! while it runs, not after. The output buffer never grows past `max`; the
//! LZ4 size prefix is checked against `max` before anything is allocated;
//! the xz window grows with the output only; a zstd frame that declares a
//! window over `max` (or 8 MiB, whichever is larger) is refused before its
//! decoder allocates. So a small payload that claims gigabytes costs about
//! `max` bytes before it is refused.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read};

/// DATA object flag: the payload is an XZ stream.
pub const OBJECT_COMPRESSED_XZ: u8 = 1;
/// DATA object flag: the payload is a size-prefixed LZ4 block.
pub const OBJECT_COMPRESSED_LZ4: u8 = 2;
/// DATA object flag: the payload is a zstd frame.
pub const OBJECT_COMPRESSED_ZSTD: u8 = 4;

/// The largest xz dictionary accepted, in KiB: 64 MiB, what `xz -9` uses,
/// plus the decoder's own small buffers. systemd writes 1 MiB (older
/// versions 8 MiB). The window is only allocated as output arrives, so this
/// is a sanity bound, not what a payload costs.
const XZ_MEM_LIMIT_KIB: u32 = 64 * 1024 + 1024;

/// The smallest zstd window accepted whatever `max` is. systemd's one-shot
/// frames declare a window no larger than their content, so `max` alone
/// would do for them; the floor admits frames that streaming encoders write
/// (the zstd CLI reading a pipe declares 2 MiB at its default level, at most
/// 8 MiB up to level 19). The decoder reserves the declared window up front,
/// but pages it never writes are never touched.
const ZSTD_MIN_WINDOW: u64 = 8 << 20;

/// The algorithm a DATA object's payload is compressed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// An .xz stream (flag 1).
    Xz,
    /// An LZ4 block after a 64-bit size (flag 2).
    Lz4,
    /// A zstd frame (flag 4).
    Zstd,
}

/// A DATA object's flags byte with bits this reader does not know, or with
/// more than one compression bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownFlags(pub u8);

impl fmt::Display for UnknownFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown DATA object flags {:#04x}", self.0)
    }
}

impl std::error::Error for UnknownFlags {}

impl Compression {
    /// From a DATA object's flags: `Ok(None)` uncompressed, `Ok(Some(kind))`,
    /// `Err` for unknown bits or more than one.
    pub fn from_flags(flags: u8) -> Result<Option<Compression>, UnknownFlags> {
        match flags {
            0 => Ok(None),
            OBJECT_COMPRESSED_XZ => Ok(Some(Compression::Xz)),
            OBJECT_COMPRESSED_LZ4 => Ok(Some(Compression::Lz4)),
            OBJECT_COMPRESSED_ZSTD => Ok(Some(Compression::Zstd)),
            _ => Err(UnknownFlags(flags)),
        }
    }
}

/// Decompresses `data` into `out` (cleared first). Fails (io::Error,
/// InvalidData) on malformed input or when the output would exceed `max`
/// bytes — never allocates more than ~max, never panics on any input.
///
/// Bytes after the end of the stream, block or frame are ignored, as
/// systemd ignores them. On error `out` is left empty.
pub fn decompress_into(kind: Compression, data: &[u8], max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    let result = match kind {
        Compression::Xz => decompress_xz(data, max, out),
        Compression::Lz4 => decompress_lz4(data, max, out),
        Compression::Zstd => decompress_zstd(data, max, out),
    };
    if result.is_err() {
        out.clear();
    }
    result
}

/// One .xz stream, read through [`read_bounded`].
fn decompress_xz(data: &[u8], max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let reader = lzma_rust2::XzReader::new_mem_limit(data, false, XZ_MEM_LIMIT_KIB);
    read_bounded(reader, max, out).map_err(|e| context("xz", e))
}

/// One zstd frame, read through [`read_bounded`]; a frame whose window is
/// larger than `max` (or [`ZSTD_MIN_WINDOW`]) is refused before the decoder
/// allocates it.
fn decompress_zstd(data: &[u8], max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let window = u64::try_from(max).unwrap_or(u64::MAX).max(ZSTD_MIN_WINDOW);
    let reader = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(data, window)
        .map_err(|e| invalid(format!("zstd: {e}")))?;
    read_bounded(reader, max, out).map_err(|e| context("zstd", e))
}

/// The 8-byte little-endian size, then one LZ4 block that must decode to
/// exactly that many bytes. The size is checked against `max` before any
/// allocation.
fn decompress_lz4(data: &[u8], max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    if data.len() <= 8 {
        return Err(invalid("lz4: no block after the size prefix"));
    }
    let (prefix, block) = data.split_at(8);
    let mut size = [0u8; 8];
    size.copy_from_slice(prefix);
    let size = u64::from_le_bytes(size);
    let size = match usize::try_from(size) {
        Ok(size) if size <= max => size,
        _ => return Err(too_big(max)),
    };
    reserve_exact(out, size)?;
    out.resize(size, 0);
    let written = lz4_flex::block::decompress_into(block, out).map_err(|e| invalid(format!("lz4: {e}")))?;
    if written != size {
        return Err(invalid("lz4: block shorter than its size prefix"));
    }
    Ok(())
}

/// Reads `reader` to its end into `out`, failing once it yields more than
/// `max` bytes. `out` never grows past `max` bytes of capacity.
fn read_bounded(mut reader: impl Read, max: usize, out: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk)?;
        // A reader claiming more than the chunk breaks `Read`'s contract;
        // refuse that rather than panic on the slice.
        let Some(bytes) = chunk.get(..n) else {
            return Err(invalid("decoder overran its buffer"));
        };
        if bytes.is_empty() {
            return Ok(());
        }
        let len = out.len().saturating_add(n);
        if len > max {
            return Err(too_big(max));
        }
        if len > out.capacity() {
            let target = out.capacity().saturating_mul(2).min(max).max(len);
            reserve_exact(out, target - out.len())?;
        }
        out.extend_from_slice(bytes);
    }
}

/// `Vec::try_reserve_exact`; when even that much memory cannot be had, the
/// payload is refused like one that is too large.
fn reserve_exact(out: &mut Vec<u8>, additional: usize) -> io::Result<()> {
    out.try_reserve_exact(additional).map_err(|_| invalid("no memory for the decompressed data"))
}

/// A decoder's error, named after its format, as InvalidData whatever kind
/// the decoder chose (UnexpectedEof for a cut stream, OutOfMemory for a
/// dictionary over the limit, …).
fn context(format: &str, e: io::Error) -> io::Error {
    invalid(format!("{format}: {e}"))
}

/// The output would be larger than `max` bytes.
fn too_big(max: usize) -> io::Error {
    invalid(format!("decompressed data exceeds {max} bytes"))
}

/// An InvalidData error with `msg`.
fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sizes the round trips cover: empty, tiny, systemd's thresholds (it
    /// compresses from 80 bytes for XZ, 9 for LZ4) and several blocks' worth.
    const SIZES: [usize; 7] = [0, 1, 80, 1000, 65_536, 100_000, 300_000];

    /// Deterministic, compressible but not trivial bytes: words from a small
    /// list picked by a xorshift generator.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 8] = ["job", "gate ", "systemd", "=", "\n", "unit ", "42", "\u{e9}t\u{e9} "];
        let mut state = seed | 1;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state = xorshift(state);
            out.extend_from_slice(WORDS[(state % 8) as usize].as_bytes());
            if state.is_multiple_of(7) {
                out.push((state >> 24) as u8);
            }
        }
        out.truncate(len);
        out
    }

    fn xorshift(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    /// A scratch file holding `data`, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(data: &[u8]) -> Scratch {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("jobgate-decompress-{}-{n}", std::process::id()));
            std::fs::write(&path, data).expect("write scratch file");
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs `tool args… FILE` on a file holding `data` and returns its stdout.
    /// The tools (xz-utils, zstd, lz4) are installed by .ci/run.
    fn compress_with(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
        let input = Scratch::new(data);
        let output = Command::new(tool)
            .args(args)
            .arg(&input.0)
            .output()
            .unwrap_or_else(|e| panic!("{tool} (apt-get install xz-utils zstd lz4): {e}"));
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    /// Like [`compress_with`], but the tool reads a pipe, so it does not know
    /// the size in advance (as a streaming writer).
    fn compress_piped(tool: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
        let input = Scratch::new(data);
        let stdin = std::fs::File::open(&input.0).expect("open scratch file");
        let output = Command::new(tool).args(args).stdin(stdin).output().expect("run compressor");
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    /// systemd's XZ settings (compress_blob_xz): LZMA2 with a 1 MiB
    /// dictionary, fast mode, nice 128, hc3, depth 4, and no check.
    fn xz_systemd(data: &[u8]) -> Vec<u8> {
        let filter = "--lzma2=dict=1MiB,lc=3,lp=0,pb=2,mode=fast,nice=128,mf=hc3,depth=4";
        compress_with("xz", &["--format=xz", "--check=none", filter, "-c"], data)
    }

    /// Older systemd's XZ: lzma_easy_buffer_encode at the default preset (6).
    fn xz_preset(data: &[u8]) -> Vec<u8> {
        compress_with("xz", &["--format=xz", "--check=none", "-6", "-c"], data)
    }

    fn zstd_file(data: &[u8]) -> Vec<u8> {
        compress_with("zstd", &["-q", "-c"], data)
    }

    /// The journal's LZ4 form: the size as a little-endian u64, then one LZ4
    /// block. The block is taken out of the frame the lz4 tool writes (by
    /// liblz4, as journald's): with the default 4 MiB blocks, data of up to
    /// 4 MiB is one block.
    fn lz4_journal(data: &[u8]) -> Vec<u8> {
        let frame = compress_with("lz4", &["-q", "-c", "--no-frame-crc", "-B7"], data);
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(lz4_frame_block(&frame));
        out
    }

    /// The first block of an LZ4 frame, which must be a compressed one.
    fn lz4_frame_block(frame: &[u8]) -> &[u8] {
        assert_eq!(frame[..4], [0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
        let flg = frame[4];
        let mut pos = 7; // magic, FLG, BD, HC
        if flg & 0x08 != 0 {
            pos += 8; // content size
        }
        if flg & 0x01 != 0 {
            pos += 4; // dictionary id
        }
        let word = u32::from_le_bytes(frame[pos..pos + 4].try_into().expect("4 bytes"));
        assert_eq!(word & 0x8000_0000, 0, "the lz4 tool stored the block uncompressed");
        let len = word as usize;
        &frame[pos + 4..pos + 4 + len]
    }

    fn decompress(kind: Compression, data: &[u8], max: usize) -> io::Result<Vec<u8>> {
        let mut out = b"left over from before".to_vec();
        decompress_into(kind, data, max, &mut out).map(|()| out)
    }

    fn assert_invalid(result: io::Result<Vec<u8>>, what: &str) {
        match result {
            Ok(out) => panic!("{what}: decoded {} bytes, wanted an error", out.len()),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}: {e}"),
        }
    }

    /// Every kind with the payload a test input compresses to.
    fn all_kinds(data: &[u8]) -> [(Compression, Vec<u8>); 3] {
        [
            (Compression::Xz, xz_systemd(data)),
            (Compression::Lz4, lz4_journal(data)),
            (Compression::Zstd, zstd_file(data)),
        ]
    }

    #[test]
    fn from_flags_knows_the_three_kinds() {
        assert_eq!(Compression::from_flags(0), Ok(None));
        assert_eq!(Compression::from_flags(1), Ok(Some(Compression::Xz)));
        assert_eq!(Compression::from_flags(2), Ok(Some(Compression::Lz4)));
        assert_eq!(Compression::from_flags(4), Ok(Some(Compression::Zstd)));
    }

    #[test]
    fn from_flags_refuses_unknown_bits_and_combinations() {
        for flags in (0..=u8::MAX).filter(|f| ![0, 1, 2, 4].contains(f)) {
            assert_eq!(Compression::from_flags(flags), Err(UnknownFlags(flags)), "{flags:#x}");
        }
        assert_eq!(UnknownFlags(3).to_string(), "unknown DATA object flags 0x03");
    }

    #[test]
    fn xz_round_trips_with_systemd_settings_and_the_old_preset() {
        for (i, &len) in SIZES.iter().enumerate() {
            let data = sample(len, i as u64 + 1);
            for packed in [xz_systemd(&data), xz_preset(&data)] {
                assert_eq!(decompress(Compression::Xz, &packed, len).expect("xz"), data, "{len} bytes");
            }
        }
    }

    #[test]
    fn lz4_round_trips_blocks_made_by_liblz4() {
        // The lz4 tool stores tiny inputs uncompressed, so those are below.
        for (i, &len) in SIZES.iter().enumerate().filter(|(_, &len)| len >= 80) {
            let data = sample(len, i as u64 + 11);
            let packed = lz4_journal(&data);
            assert_eq!(decompress(Compression::Lz4, &packed, len).expect("lz4"), data, "{len} bytes");
        }
    }

    #[test]
    fn lz4_literal_only_block() {
        // What LZ4_compress_default makes of input it cannot shorten: one
        // sequence of literals (token: 5 literals, no match).
        let packed = [&5u64.to_le_bytes()[..], &[0x50], b"hello"].concat();
        assert_eq!(decompress(Compression::Lz4, &packed, 5).expect("lz4"), b"hello");
    }

    #[test]
    fn zstd_round_trips_sized_and_streamed_frames() {
        for (i, &len) in SIZES.iter().enumerate() {
            let data = sample(len, i as u64 + 21);
            let sized = zstd_file(&data);
            assert_eq!(decompress(Compression::Zstd, &sized, len).expect("zstd"), data, "{len} bytes");
            // From a pipe: no content size, a 2 MiB window.
            let streamed = compress_piped("zstd", &["-q", "-c", "--no-check"], &data);
            assert_eq!(decompress(Compression::Zstd, &streamed, len).expect("zstd"), data, "{len} piped");
        }
    }

    #[test]
    fn output_of_exactly_max_is_accepted_one_more_is_refused() {
        let data = sample(10_000, 5);
        for (kind, packed) in all_kinds(&data) {
            assert_eq!(decompress(kind, &packed, 10_000).expect("at max"), data, "{kind:?}");
            assert_invalid(decompress(kind, &packed, 9_999), &format!("{kind:?} over max"));
            assert_invalid(decompress(kind, &packed, 0), &format!("{kind:?} max 0"));
        }
    }

    #[test]
    fn bombs_are_refused_with_the_buffer_kept_within_max() {
        let zeros = vec![0u8; 32 << 20];
        let max = 1 << 20;
        let bombs = [
            (Compression::Xz, xz_systemd(&zeros)),
            (Compression::Zstd, zstd_file(&zeros)),
            (Compression::Zstd, compress_piped("zstd", &["-q", "-c"], &zeros)),
        ];
        for (kind, packed) in bombs {
            assert!(packed.len() < 64 << 10, "{kind:?} bomb is {} bytes", packed.len());
            let mut out = Vec::new();
            let err = decompress_into(kind, &packed, max, &mut out).expect_err("bomb");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{kind:?}: {err}");
            assert!(out.is_empty(), "{kind:?}: output left after an error");
            assert!(out.capacity() <= max, "{kind:?}: buffer grew to {}", out.capacity());
        }
    }

    #[test]
    fn lz4_size_prefix_is_checked_before_decoding() {
        let block = &lz4_journal(b"hello hello hello hello hello")[8..];
        for claimed in [u64::MAX, 1 << 40, 1 << 21] {
            let mut packed = claimed.to_le_bytes().to_vec();
            packed.extend_from_slice(block);
            let mut out = Vec::new();
            let err = decompress_into(Compression::Lz4, &packed, 1 << 20, &mut out).expect_err("too big");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(out.capacity(), 0, "allocated for a refused size");
        }
    }

    #[test]
    fn lz4_block_must_fill_its_size_prefix_exactly() {
        let data = b"hello hello hello hello hello".as_slice();
        let block = &lz4_journal(data)[8..];
        for claimed in [data.len() - 1, data.len() + 1, 0] {
            let mut packed = (claimed as u64).to_le_bytes().to_vec();
            packed.extend_from_slice(block);
            assert_invalid(decompress(Compression::Lz4, &packed, 1000), &format!("claimed {claimed}"));
        }
        assert_invalid(decompress(Compression::Lz4, &8u64.to_le_bytes(), 1000), "prefix only");
    }

    #[test]
    fn zstd_window_over_the_limit_is_refused_before_allocating() {
        // Frame magic, a header with only a window descriptor, and a window
        // of 2^41 bytes; no blocks follow.
        let header = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
        assert_invalid(decompress(Compression::Zstd, &header, 1 << 20), "2 TiB window");
        // A real frame with a 128 MiB window, more than max and the floor.
        let long = compress_piped("zstd", &["-q", "-c", "--long=27"], &sample(1000, 9));
        assert_invalid(decompress(Compression::Zstd, &long, 1 << 20), "128 MiB window");
    }

    #[test]
    fn xz_dictionary_up_to_64_mib_is_accepted_larger_refused() {
        let data = sample(1000, 13);
        let nine = compress_with("xz", &["--format=xz", "--check=none", "-9", "-c"], &data);
        assert_eq!(decompress(Compression::Xz, &nine, 1000).expect("xz -9"), data);
        let filter = "--lzma2=preset=0,dict=256MiB";
        let huge = compress_with("xz", &["--format=xz", "--check=none", filter, "-c"], &data);
        assert_invalid(decompress(Compression::Xz, &huge, 1000), "256 MiB dictionary");
    }

    #[test]
    fn truncated_payloads_fail() {
        let data = sample(3000, 77);
        for (kind, packed) in all_kinds(&data) {
            for len in 0..packed.len() {
                let cut = &packed[..len];
                let result = decompress(kind, cut, 1 << 20);
                assert_invalid(result, &format!("{kind:?} cut to {len} of {}", packed.len()));
            }
        }
    }

    #[test]
    fn garbage_fails() {
        let mut state = 0x9e37_79b9_7f4a_7c15;
        for len in [0, 1, 7, 8, 9, 12, 13, 64, 1000, 5000] {
            let mut junk = Vec::with_capacity(len);
            for _ in 0..len {
                state = xorshift(state);
                junk.push(state as u8);
            }
            for kind in [Compression::Xz, Compression::Zstd] {
                assert_invalid(decompress(kind, &junk, 1 << 20), &format!("{kind:?} {len} junk bytes"));
            }
            // LZ4 has no magic: with a size prefix that is too large, or no
            // block, it must fail.
            assert_invalid(decompress(Compression::Lz4, &junk, 1 << 20), &format!("lz4 {len} junk bytes"));
        }
    }

    /// Flips, zeroes and saturates bytes all over valid payloads: whatever the
    /// decoders make of it, they return (no panic) and keep within max.
    #[test]
    fn mutated_payloads_never_panic_or_exceed_max() {
        let data = sample(2000, 3);
        let max = 4096;
        let mut state = 0x2545_f491_4f6c_dd1d;
        for (kind, packed) in all_kinds(&data) {
            for pos in 0..packed.len() {
                for value in [packed[pos] ^ 0x01, packed[pos] ^ 0x80, 0x00, 0xff] {
                    let mut bad = packed.clone();
                    bad[pos] = value;
                    check_bounded(kind, &bad, max);
                }
                state = xorshift(state);
                let mut bad = packed.clone();
                bad[pos] = state as u8;
                bad[(state >> 8) as usize % packed.len()] = (state >> 16) as u8;
                check_bounded(kind, &bad, max);
            }
        }
    }

    fn check_bounded(kind: Compression, data: &[u8], max: usize) {
        let mut out = Vec::new();
        match decompress_into(kind, data, max, &mut out) {
            Ok(()) => assert!(out.len() <= max),
            Err(e) => {
                assert!(out.is_empty());
                assert!(matches!(e.kind(), io::ErrorKind::InvalidData), "{kind:?}: {e}");
            }
        }
        assert!(out.capacity() <= max, "{kind:?}: buffer grew to {}", out.capacity());
    }
}
