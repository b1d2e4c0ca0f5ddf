//! Any name `JobName::parse` accepts matches the contract's grammar, and
//! every argument vector built from it holds exactly one unit name, last.
#![no_main]

use std::sync::OnceLock;

use jobgate::names::{Cursor, JobName, Prefix};
use jobgate::systemd::argv::{Call, EntryRead, Privilege, Seek, Tools};
use libfuzzer_sys::fuzz_target;
use regex::Regex;

fn grammar() -> &'static Regex {
    static GRAMMAR: OnceLock<Regex> = OnceLock::new();
    GRAMMAR.get_or_init(|| {
        Regex::new(r"\Aci-test-[a-zA-Z0-9_-]+(@[a-zA-Z0-9_][a-zA-Z0-9._-]{0,63})?\z").expect("oracle regex")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let prefix = Prefix::parse("ci-test-").expect("prefix");
    let Ok(job) = JobName::parse(&prefix, text) else { return };
    assert!(grammar().is_match(text), "accepted outside the grammar: {text:?}");
    assert!(text.len() <= 128, "accepted an overlong name");
    assert!(!text.split_once('@').is_some_and(|(_, i)| i.contains("..")), "accepted '..' in an instance");
    assert_eq!(job.to_string(), text, "display round trip");

    let unit = job.unit();
    let cursor = Cursor::parse("s=1;i=1").expect("cursor");
    for privilege in [Privilege::Sudo, Privilege::Polkit] {
        let tools = Tools { privilege, ..Tools::default() };
        let read = EntryRead { unit: &unit, seek: Seek::After(&cursor), backward: false, follow: true, manager: true };
        let lines_only = EntryRead { seek: Seek::Since(1), backward: true, follow: false, manager: false, ..read };
        let calls = [
            Call::Start(&unit),
            Call::Stop(&unit),
            Call::Show(&unit),
            Call::ManagerEvents(&unit),
            Call::UnitEntries(read),
            Call::UnitEntries(lines_only),
            Call::UnitMessages { unit: &unit, since: 1, until: 2 },
        ];
        // The unit is one argument: itself, or a journal match on it.
        let match_arg = format!("_SYSTEMD_UNIT={unit}");
        for call in calls {
            let argv: Vec<String> = call.argv(&tools).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
            let units = argv.iter().filter(|a| a.ends_with(".service")).count();
            assert_eq!(units, 1, "{argv:?}");
            let whole = |a: &&String| *a == unit.as_str() || **a == match_arg;
            assert!(argv.iter().filter(|a| a.contains(text)).all(|a| whole(&a)), "the name leaked into another argument: {argv:?}");
        }
        let start: Vec<String> = Call::Start(&unit).argv(&tools).into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(start[start.len() - 2..], ["--".to_string(), unit.to_string()]);
    }
});
