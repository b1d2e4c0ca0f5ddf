//! The ways to run jobgate, each a thin shell around `api` or `ops`.
pub mod admin;
pub mod serve;
