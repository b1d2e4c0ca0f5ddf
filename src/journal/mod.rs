pub mod decompress;
pub mod hash;
