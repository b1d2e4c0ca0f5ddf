//! STUB until the helper's version lands.
#![forbid(unsafe_code)]
use std::io;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression { Xz, Lz4, Zstd }
#[derive(Debug)]
pub struct UnknownFlags(pub u8);
impl std::fmt::Display for UnknownFlags { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { write!(f, "unknown flags {:#x}", self.0) } }
impl Compression {
    pub fn from_flags(flags: u8) -> Result<Option<Compression>, UnknownFlags> {
        match flags { 0 => Ok(None), 1 => Ok(Some(Compression::Xz)), 2 => Ok(Some(Compression::Lz4)), 4 => Ok(Some(Compression::Zstd)), f => Err(UnknownFlags(f)) }
    }
}
pub fn decompress_into(_kind: Compression, _data: &[u8], _max: usize, _out: &mut Vec<u8>) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "stub"))
}
