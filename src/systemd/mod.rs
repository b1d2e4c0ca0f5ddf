//! Everything that talks to systemd: argument vectors (`argv`), running them
//! (`run`), and reading what they print (`export`, `parse`).
pub mod argv;
pub mod export;
pub mod parse;
pub mod run;
