//! Everything that talks to systemd: argument vectors (`argv`), running them
//! (`run`), and reading what they print (`parse`).
pub mod argv;
pub mod parse;
pub mod run;
