//! The door to systemd's manager and programs: argument vectors (`argv`,
//! the one table of every call), running them (`run`), unit state over the
//! system bus without a child (`bus`), and what `systemctl` prints (`parse`).
//! The journal has a room of its own, `crate::journal`.
pub mod argv;
pub mod bus;
pub mod parse;
pub mod run;
