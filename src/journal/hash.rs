//! STUB until the helper's version lands.
#![forbid(unsafe_code)]
#[allow(deprecated)]
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut k0 = [0u8; 8];
    let mut k1 = [0u8; 8];
    k0.copy_from_slice(&key[..8]);
    k1.copy_from_slice(&key[8..]);
    let mut h = std::hash::SipHasher::new_with_keys(u64::from_le_bytes(k0), u64::from_le_bytes(k1));
    h.write(data);
    h.finish()
}
pub fn jenkins_hash64(_data: &[u8]) -> u64 {
    0
}
