//! Per-token, per-job `tail` cursors under the state directory, so that a
//! polling client that sends no cursor sees every line exactly once.
//! Nothing else writes there.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::names::{Cursor, JobName, RunId};

pub struct TailState {
    dir: PathBuf,
}

impl TailState {
    pub fn new(state_dir: PathBuf) -> TailState {
        TailState { dir: state_dir.join("tail") }
    }

    /// Token names are `[a-zA-Z0-9_.-]+` and jobs are validated, so the file
    /// name `NAME,JOB` can hold no `/` and no other token's cursor.
    fn path(&self, token_name: &str, job: &JobName) -> PathBuf {
        self.dir.join(format!("{token_name},{job}"))
    }

    /// The run and cursor this token was last given for this job.
    pub fn load(&self, token_name: &str, job: &JobName) -> Option<(RunId, Cursor)> {
        let text = fs::read_to_string(self.path(token_name, job)).ok()?;
        let (run, cursor) = text.trim_end().split_once(' ')?;
        Some((RunId::parse(run)?, Cursor::parse(cursor)?))
    }

    /// Holds off every other `tail` of this token and job, in any process,
    /// while the returned lock lives: a load, read and save are one step,
    /// so concurrent cursorless tails never hand out the same lines twice.
    pub fn lock(&self, token_name: &str, job: &JobName) -> io::Result<fs::File> {
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir)?;
        }
        crate::secure_file::lock_beside(&self.path(token_name, job))
    }

    pub fn save(&self, token_name: &str, job: &JobName, run: &RunId, cursor: &Cursor) -> io::Result<()> {
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir)?;
        }
        let line = format!("{run} {}\n", cursor.as_str());
        crate::secure_file::replace(&self.path(token_name, job), line.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Prefix;

    #[test]
    fn round_trip_per_token_and_job() {
        let dir = std::env::temp_dir().join(format!("jobgate-tail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let state = TailState::new(dir.clone());
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let job = JobName::parse(&prefix, "ci-test-a").expect("job");
        let run = RunId::parse("0123456789abcdef0123456789abcdef").expect("run");
        let cursor = Cursor::parse("s=1;i=2").expect("cursor");
        assert_eq!(state.load("ci", &job), None);
        state.save("ci", &job, &run, &cursor).expect("save");
        assert_eq!(state.load("ci", &job), Some((run, cursor)));
        assert_eq!(state.load("other", &job), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
