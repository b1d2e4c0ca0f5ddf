//! The ways to run jobgate, each a thin shell around `api` or `ops`.
pub mod admin;
pub mod cgi;
pub mod exchange;
pub mod http1;
pub mod inetd;
pub mod listen;
pub mod serve;
