//! Everything that talks to systemd: argument vectors (`argv`), running them
//! (`run`), and reading what they print (`export`, `parse`); unit state
//! over the system bus without a child (`bus`).
pub mod argv;
pub mod bus;
pub mod export;
pub mod parse;
pub mod run;
