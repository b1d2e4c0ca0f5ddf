//! jobgate: a narrow gate that lets CI start systemd jobs, watch their state
//! and read their logs over HTTP, and nothing else.
//!
//! The binary (`main.rs`) only wires these parts together; the library form
//! lets the fuzz targets (`fuzz/`) call the pure parts directly.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod error;
pub mod follow;
pub mod front;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod oidc;
pub mod ops;
pub mod redact;
pub mod render;
pub mod runs;
pub mod secure_file;
pub mod systemd;
pub mod tail_state;
