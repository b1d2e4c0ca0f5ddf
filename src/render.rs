//! JSON views of what the operations return, shared by the HTTP answers and
//! the admin CLI's `--json`, so both say the same thing the same way.
#![forbid(unsafe_code)]

use serde_json::{json, Value};

use crate::names::JobName;
use crate::ops::JobSummary;
use crate::runs::Run;
use crate::systemd::parse::{rfc3339, UnitState};

pub fn state(job: &JobName, state: &UnitState) -> Value {
    json!({
        "job": job.as_str(),
        "state": state.active_state,
        "sub_state": state.sub_state,
        "result": state.result,
        "exit_status": state.exit_status,
        "restarts": state.restarts,
        "run": state.run.as_ref().map(|r| r.as_str()),
        "started": state.started.map(rfc3339),
        "finished": state.finished.filter(|_| state.run_over()).map(rfc3339),
    })
}

pub fn jobs(jobs: &[JobSummary]) -> Value {
    let list: Vec<Value> =
        jobs.iter().map(|j| json!({"job": j.job.as_str(), "unit": j.job.unit().as_str(), "state": j.state})).collect();
    json!({ "jobs": list })
}

pub fn runs(runs: &[Run]) -> Value {
    let list: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "run": r.run.as_str(),
                "started": rfc3339(r.started / 1_000_000),
                "finished": r.finished.map(|f| rfc3339(f / 1_000_000)),
                "result": r.result,
                "exit_status": r.exit_status,
            })
        })
        .collect();
    json!({ "runs": list })
}

/// A lines answer's body, written as it goes (never a JSON value of all
/// its lines). Keys in the order serde_json writes an object's.
pub struct LinesBody {
    text: bool,
    pub bytes: Vec<u8>,
    first: bool,
}

impl LinesBody {
    pub fn new(text: bool, cursor: Option<Option<&str>>) -> LinesBody {
        let mut bytes = Vec::new();
        if !text {
            bytes.push(b'{');
            if let Some(cursor) = cursor {
                bytes.extend_from_slice(b"\"cursor\":");
                bytes.extend_from_slice(json!(cursor).to_string().as_bytes());
                bytes.push(b',');
            }
            bytes.extend_from_slice(b"\"logs\":[");
        }
        LinesBody { text, bytes, first: true }
    }

    pub fn line(&mut self, line: &str) {
        if self.text {
            self.bytes.extend_from_slice(line.as_bytes());
            self.bytes.push(b'\n');
            return;
        }
        if !self.first {
            self.bytes.push(b',');
        }
        self.first = false;
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.bytes, line);
    }

    /// The rest of the body, with the run the lines are of.
    pub fn end(mut self, run: Option<&str>) -> Vec<u8> {
        if !self.text {
            self.bytes.extend_from_slice(b"],\"run\":");
            self.bytes.extend_from_slice(json!(run).to_string().as_bytes());
            self.bytes.extend_from_slice(b"}\n");
        }
        self.bytes
    }
}

/// Bytes of a lines body handed out at a time by [`send_lines`].
const SEND_BYTES: usize = 64 << 10;

/// Renders the lines `each` gives as a lines body of `run` and hands it to
/// `send` in pieces of about [`SEND_BYTES`], so that no answer is held
/// whole. A failure of either cuts the body short.
pub fn send_lines(
    text: bool,
    run: &str,
    each: impl FnOnce(&mut dyn FnMut(&str) -> std::io::Result<()>) -> std::io::Result<()>,
    send: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut body = LinesBody::new(text, None);
    each(&mut |line| {
        body.line(line);
        if body.bytes.len() >= SEND_BYTES {
            send(&std::mem::take(&mut body.bytes))?;
        }
        Ok(())
    })?;
    send(&body.end(Some(run)))
}
