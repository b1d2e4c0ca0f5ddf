//! JSON views of what the operations return, shared by the HTTP answers and
//! the admin CLI's `--json`, so both say the same thing the same way.
#![forbid(unsafe_code)]

use serde_json::{json, Value};

use crate::names::JobName;
use crate::ops::{JobSummary, Run};
use crate::systemd::parse::{rfc3339, UnitState};

pub fn state(job: &JobName, state: &UnitState) -> Value {
    json!({
        "job": job.as_str(),
        "state": state.active_state,
        "sub_state": state.sub_state,
        "result": state.result,
        "exit_status": state.exit_status,
        "run": state.run.as_ref().map(|r| r.as_str()),
        "started": state.started.map(rfc3339),
        "finished": state.finished.filter(|_| !state.is_running()).map(rfc3339),
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
