//! The two hash functions of journal files' hash tables.
//!
//! A DATA object stores the hash of its (uncompressed) payload, and the data
//! and field hash tables are indexed by it. Which function made it depends on
//! the file: with the header's incompatible flag KEYED_HASH it is SipHash-2-4
//! keyed with the file's `file_id` ([`siphash24`]); older files use Bob
//! Jenkins' lookup3 `hashlittle2` ([`jenkins_hash64`]). Neither is a
//! cryptographic check: they only find objects.
#![forbid(unsafe_code)]

/// SipHash-2-4 of `data` keyed with a file's 16-byte `file_id`, as systemd's
/// `siphash24(data, size, file_id)` for files with the KEYED_HASH flag.
///
/// The key's first eight bytes, read little-endian, are k0 and the last
/// eight k1. std's `SipHasher` is SipHash-2-4 and its `write` hashes the
/// bytes as given (no length prefix), which is what systemd computes.
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let [k0, k1] = key_halves(key);
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new_with_keys(k0, k1);
    hasher.write(data);
    hasher.finish()
}

/// The key's two little-endian halves.
fn key_halves(key: &[u8; 16]) -> [u64; 2] {
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&key[..8]);
    high.copy_from_slice(&key[8..]);
    [u64::from_le_bytes(low), u64::from_le_bytes(high)]
}

/// Bob Jenkins' lookup3 `hashlittle2` of `data` with both initial values 0,
/// returned as systemd's `jenkins_hash64()` does: the primary hash `c` in the
/// high half, the secondary `b` in the low half.
pub fn jenkins_hash64(data: &[u8]) -> u64 {
    let (c, b) = hashlittle2(data, 0, 0);
    (u64::from(c) << 32) | u64::from(b)
}

/// lookup3's `hashlittle2`: returns `(c, b)` for initial values `pc`, `pb`.
///
/// The bytes are read as little-endian 32-bit words, 12 bytes (three words)
/// at a time; the last 1 to 12 bytes go through [`final_mix`], and an empty
/// input through neither mix. The length enters the state as a 32-bit value,
/// as in the C (`(uint32_t) length`).
fn hashlittle2(data: &[u8], pc: u32, pb: u32) -> (u32, u32) {
    let init = 0xdead_beef_u32.wrapping_add(data.len() as u32).wrapping_add(pc);
    let mut state = [init, init, init.wrapping_add(pb)];
    if data.is_empty() {
        return (state[2], state[1]);
    }
    let mut rest = data;
    while rest.len() > 12 {
        let (block, tail) = rest.split_at(12);
        add_block(&mut state, block);
        mix(&mut state);
        rest = tail;
    }
    add_block(&mut state, rest);
    final_mix(&mut state);
    (state[2], state[1])
}

/// Adds up to 12 bytes to `a`, `b`, `c` as three little-endian words; a
/// short block counts as if padded with zero bytes.
fn add_block(state: &mut [u32; 3], block: &[u8]) {
    for (word, chunk) in state.iter_mut().zip(block.chunks(4)) {
        let mut bytes = [0u8; 4];
        bytes[..chunk.len()].copy_from_slice(chunk);
        *word = word.wrapping_add(u32::from_le_bytes(bytes));
    }
}

/// lookup3's `mix()`: mixes three words reversibly.
fn mix(state: &mut [u32; 3]) {
    let [mut a, mut b, mut c] = *state;
    a = a.wrapping_sub(c) ^ c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c) ^ c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a) ^ a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b) ^ b.rotate_left(4);
    b = b.wrapping_add(a);
    *state = [a, b, c];
}

/// lookup3's `final()`: the last mixing, most thorough in `c`.
fn final_mix(state: &mut [u32; 3]) {
    let [mut a, mut b, mut c] = *state;
    c = (c ^ b).wrapping_sub(b.rotate_left(14));
    a = (a ^ c).wrapping_sub(c.rotate_left(11));
    b = (b ^ a).wrapping_sub(a.rotate_left(25));
    c = (c ^ b).wrapping_sub(b.rotate_left(16));
    a = (a ^ c).wrapping_sub(c.rotate_left(4));
    b = (b ^ a).wrapping_sub(a.rotate_left(14));
    c = (c ^ b).wrapping_sub(b.rotate_left(24));
    *state = [a, b, c];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::native::decompress::{decompress_into, Compression};

    /// lookup3.c's own known values (driver5), as (pc, pb) in, (c, b) out.
    #[test]
    fn hashlittle2_matches_lookup3_driver5() {
        let four_score = b"Four score and seven years ago";
        let cases: [(&[u8], u32, u32, u32, u32); 6] = [
            (b"", 0, 0, 0xdead_beef, 0xdead_beef),
            (b"", 0, 0xdead_beef, 0xbd5b_7dde, 0xdead_beef),
            (b"", 0xdead_beef, 0xdead_beef, 0x9c09_3ccd, 0xbd5b_7dde),
            (four_score, 0, 0, 0x1777_0551, 0xce72_26e6),
            (four_score, 0, 1, 0xe360_7cae, 0xbd37_1de4),
            (four_score, 1, 0, 0xcd62_8161, 0x6cbe_a4b3),
        ];
        for (data, pc, pb, c, b) in cases {
            assert_eq!(hashlittle2(data, pc, pb), (c, b), "{:?} pc={pc:#x} pb={pb:#x}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn jenkins_hash64_puts_c_high_and_b_low() {
        assert_eq!(jenkins_hash64(b""), 0xdead_beef_dead_beef);
        assert_eq!(jenkins_hash64(b"Four score and seven years ago"), 0x1777_0551_ce72_26e6);
    }

    /// The SipHash-2-4 paper's vectors: key 00..0f, messages 00..(n-1).
    #[test]
    fn siphash24_matches_the_reference_vectors() {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(&key, b""), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(&key, &message), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn siphash24_reads_the_key_little_endian() {
        let mut key = [0u8; 16];
        key[0] = 1;
        #[allow(deprecated)]
        let mut expected = std::hash::SipHasher::new_with_keys(1, 0);
        std::hash::Hasher::write(&mut expected, b"x");
        assert_eq!(siphash24(&key, b"x"), std::hash::Hasher::finish(&expected));
    }

    // Journal files made by systemd-journal-remote: the hash stored in every
    // DATA and FIELD object must be the one these functions compute over the
    // (decompressed) payload. See tests/data/journals/README.md.
    const KEYED_COMPACT: &[u8] = include_bytes!("../../../tests/data/journals/keyed-compact.journal.zst");
    const LEGACY: &[u8] = include_bytes!("../../../tests/data/journals/legacy.journal.zst");

    const KEYED_HASH: u32 = 4;
    const COMPACT: u32 = 16;
    const OBJECT_DATA: u8 = 1;
    const OBJECT_FIELD: u8 = 2;

    /// What a walk over a file's objects checked.
    #[derive(Debug, Default, PartialEq)]
    struct Checked {
        data: usize,
        compressed: usize,
        fields: usize,
    }

    fn le64(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    fn unpack(fixture: &[u8]) -> Vec<u8> {
        let mut file = Vec::new();
        decompress_into(Compression::Zstd, fixture, 16 << 20, &mut file).expect("fixture unpacks");
        assert_eq!(&file[..8], b"LPKSHHRH", "journal file signature");
        file
    }

    /// Checks the stored hash of every DATA and FIELD object of `file`.
    fn check_file(file: &[u8]) -> Checked {
        let incompatible = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
        let file_id: [u8; 16] = file[24..40].try_into().expect("16 bytes");
        let hash = |payload: &[u8]| {
            if incompatible & KEYED_HASH != 0 {
                siphash24(&file_id, payload)
            } else {
                jenkins_hash64(payload)
            }
        };
        let data_payload = if incompatible & COMPACT != 0 { 72 } else { 64 };
        let header_size = le64(file, 88) as usize;
        let end = header_size + le64(file, 96) as usize;
        let mut checked = Checked::default();
        let mut plain = Vec::new();
        let mut at = header_size;
        while at + 16 <= end {
            let size = le64(file, at + 8) as usize;
            if size == 0 {
                break; // the unused rest of the arena
            }
            let object = &file[at..at + size];
            match object[0] {
                OBJECT_DATA => {
                    let payload = &object[data_payload..];
                    let payload = match Compression::from_flags(object[1]).expect("known flags") {
                        None => payload,
                        Some(kind) => {
                            decompress_into(kind, payload, 1 << 20, &mut plain).expect("DATA decompresses");
                            checked.compressed += 1;
                            &plain
                        }
                    };
                    assert_eq!(hash(payload), le64(object, 16), "DATA at {at}: {:?}", String::from_utf8_lossy(payload));
                    checked.data += 1;
                }
                OBJECT_FIELD => {
                    assert_eq!(hash(&object[40..]), le64(object, 16), "FIELD at {at}");
                    checked.fields += 1;
                }
                _ => {}
            }
            at += size.next_multiple_of(8);
        }
        checked
    }

    #[test]
    fn keyed_file_hashes_are_siphash_of_the_file_id() {
        let file = unpack(KEYED_COMPACT);
        let flags = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
        assert_eq!(flags & (KEYED_HASH | COMPACT), KEYED_HASH | COMPACT);
        assert_eq!(check_file(&file), Checked { data: 135, compressed: 6, fields: 47 });
    }

    #[test]
    fn legacy_file_hashes_are_jenkins_hash64() {
        let file = unpack(LEGACY);
        let flags = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
        assert_eq!(flags & (KEYED_HASH | COMPACT), 0);
        assert_eq!(check_file(&file), Checked { data: 135, compressed: 6, fields: 47 });
    }
}
