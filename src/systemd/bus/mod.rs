//! A unit's state and the list of jobs over the system bus, without a
//! child process, on connections kept for the life of the process. For the
//! state, the manager's `GetUnit` and `ListUnitsByNames`, then
//! `Properties.Get` of the unit's last run (`state_of` says why not one
//! `GetAll`, as `systemctl show` makes); for the list, the manager's
//! `ListUnitsByPatterns` and `ListUnitFilesByPatterns`, as `systemctl
//! list-units` and `list-unit-files` make them. This client, std only and
//! without unsafe code, needs no process of its own and makes them in
//! about a millisecond.
//!
//! The caller falls back to systemctl whenever this says nothing
//! ([`SystemBus::unit_state`] or [`SystemBus::listed_jobs`] returns
//! `None`): the bus is not there, does not answer within [`BUS_TIMEOUT`],
//! refuses, or answers with more than it reads. A connection that fails
//! is dropped with every other kept one (the bus has gone or restarted);
//! the next call connects anew, once, and after a failed connection the
//! bus is left alone for [`RETRY_PAUSE`]. A failure is logged once per
//! streak, not per request.
//!
//! Unit names come only from [`UnitName`], patterns only from [`Prefix`];
//! nothing here is privileged: systemd's bus policy lets any user read
//! units' properties and call the two listings (both since systemd 230).
#![forbid(unsafe_code)]

mod conn;
#[cfg(test)]
pub(crate) mod fake;
pub mod wire;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use conn::{Answer, CallError, Connection};
use wire::{Arg, Message, MethodCall, Prop, WireError};

use crate::names::{JobName, Prefix, UnitName};
use crate::systemd::argv::{self, SHOW_PROPERTIES};
use crate::systemd::parse::{self, Listing, UnitState};

/// The system bus's socket when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const DEFAULT_SOCKET: &str = "/run/dbus/system_bus_socket";
/// The longest a request waits for the bus (connecting included) before
/// it asks `systemctl show` instead.
pub const BUS_TIMEOUT: Duration = Duration::from_secs(2);
/// After a connection could not be made, how long requests go straight to
/// `systemctl show` before the bus is tried again.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Most idle connections kept (one per request served at once; the load
/// test of tests/system counts them among serve's open files).
const MAX_IDLE: usize = 4;

/// Most units, and most unit files, one listing reads: a reply with more
/// is no answer, and systemctl lists them instead. (A reply is at most
/// [`wire::MAX_MESSAGE`] bytes too: some 4,000 units, with their
/// descriptions, fit in it.)
pub const MAX_LISTED: usize = 10_000;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
/// The properties of [`SHOW_PROPERTIES`] that `ListUnitsByNames` gives.
const LISTED_PROPERTIES: [&str; 3] = ["LoadState", "ActiveState", "SubState"];
/// The others, of the unit's last run, with their interfaces: the run's id
/// first.
const RUN_PROPERTIES: [(&str, &str); 6] = [
    (UNIT, "InvocationID"),
    (SERVICE, "Result"),
    (SERVICE, "ExecMainStatus"),
    (SERVICE, "NRestarts"),
    (SERVICE, "ExecMainStartTimestamp"),
    (SERVICE, "ExecMainExitTimestamp"),
];
/// What is asked for again after the run's properties: if neither changed
/// since the listing and the run's first property, all are of one run in
/// one state.
const BRACKET: [(&str, &str); 2] = [(UNIT, "InvocationID"), (UNIT, "ActiveState")];
/// `GetUnit`'s answer for a unit that is not loaded.
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// The system bus, connected on first use.
pub struct SystemBus {
    socket: PathBuf,
    /// [`BUS_TIMEOUT`] and [`RETRY_PAUSE`], shorter in tests.
    timeout: Duration,
    retry_pause: Duration,
    pool: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    /// After a failed connection: no new one is tried before this.
    retry_at: Option<Instant>,
    /// In a streak of failures (logged once, when it began).
    failing: bool,
}

/// Why the bus gave no answer.
enum Failure {
    /// Not tried: a connection failed a moment ago.
    Paused,
    Call(CallError),
}

impl SystemBus {
    /// The bus at `socket`.
    pub fn at(socket: PathBuf) -> SystemBus {
        SystemBus { socket, timeout: BUS_TIMEOUT, retry_pause: RETRY_PAUSE, pool: Mutex::new(Pool::default()) }
    }

    /// The bus `DBUS_SYSTEM_BUS_ADDRESS` names, else the usual one.
    pub fn from_env() -> Result<SystemBus, String> {
        let address = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS");
        let address = address.as_ref().map(|a| a.to_str().ok_or("DBUS_SYSTEM_BUS_ADDRESS is not UTF-8")).transpose()?;
        Ok(SystemBus::at(socket_path(address)?))
    }

    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// The unit's state as `systemctl show` would give it, or `None` when
    /// the bus cannot say (the failure is logged): then ask systemctl.
    pub fn unit_state(&self, unit: &UnitName) -> Option<UnitState> {
        let state = self.state_of(unit);
        self.answer(state, || format!("reading the state of {unit} over the system bus"))
    }

    /// A unit systemd has unloaded (a finished job it collected) holds no
    /// run, and asking for its properties loads it from its file again, for
    /// each call: `GetAll` would take milliseconds of the manager's time for
    /// what every unloaded unit says. So `GetUnit`, which loads nothing,
    /// asks whether it is loaded, and `ListUnitsByNames` right after it
    /// gives its load, active and sub state (loading it once if it was not).
    /// Of an unloaded unit that is all: its other properties are those of a
    /// unit that never ran, as `GetAll` would give them. Of a loaded one,
    /// its run's properties follow.
    fn state_of(&self, unit: &UnitName) -> Result<UnitState, Failure> {
        let name = [unit.as_str()];
        let (get, list) = ([Arg::Str(unit.as_str())], [Arg::Strs(&name)]);
        let calls = [manager_call("GetUnit", &get), manager_call("ListUnitsByNames", &list)];
        let answers = self.answers(&calls, |index, reply| match index {
            0 => Ok(None),
            _ => read_listed(reply).map(Some),
        })?;
        let [loaded, listed]: [Answer<Option<Listed>>; 2] = answers.try_into().map_err(|_| no_reply())?;
        let listed = listed.map_err(Failure::Call)?.ok_or_else(no_reply)?;
        match loaded {
            Ok(_) => self.run_properties(unit, &listed),
            Err(CallError::Reply { name, .. }) if name == NO_SUCH_UNIT && listed.active == "inactive" => {
                Ok(listed.never_ran())
            }
            // Started between the two calls: loaded now.
            Err(CallError::Reply { name, .. }) if name == NO_SUCH_UNIT => self.run_properties(unit, &listed),
            Err(e) => Err(Failure::Call(e)),
        }
    }

    /// The state of a loaded unit: as listed, with its run's properties
    /// each asked for on its own, all at once (`GetAll` would have systemd
    /// work out some hundred, among them cgroup counters read from the
    /// kernel), and its run and active state once more last. Where those
    /// changed since the listing and the run's first property, the state is
    /// one `GetAll`, which systemd answers from one moment.
    fn run_properties(&self, unit: &UnitName, listed: &Listed) -> Result<UnitState, Failure> {
        let path = object_path(unit.as_str());
        let asked: Vec<(&str, &str)> = RUN_PROPERTIES.iter().chain(&BRACKET).copied().collect();
        let args: Vec<[Arg; 2]> =
            asked.iter().map(|&(interface, name)| [Arg::Str(interface), Arg::Str(name)]).collect();
        let calls: Vec<MethodCall> = args.iter().map(|args| property_call(&path, "Get", args)).collect();
        let shown = self.call_all(&calls, |index, reply| Ok(as_shown(asked[index].1, &reply.property()?)))?;
        let (run, after) = shown.split_at(RUN_PROPERTIES.len());
        if [&run[0], &listed.active] != [&after[0], &after[1]] {
            return self.call(&property_call(&path, "GetAll", &[Arg::Str("")]), read_state);
        }
        let names = LISTED_PROPERTIES.into_iter().chain(RUN_PROPERTIES.iter().map(|&(_, name)| name));
        let values = [&listed.load, &listed.active, &listed.sub].into_iter().chain(run);
        Ok(parse::unit_state_from(names.zip(values.map(String::as_str))))
    }

    /// The prefix's jobs as `systemctl list-units --all` and `systemctl
    /// list-unit-files` list them (the same calls, with the same pattern),
    /// or `None` when the bus cannot say (the failure is logged): then ask
    /// systemctl.
    pub fn listed_jobs(&self, prefix: &Prefix) -> Option<Listing> {
        let pattern = argv::service_pattern(prefix);
        // No states: every unit, as `--all` has it, and every unit file.
        let args = [Arg::Strs(&[]), Arg::Strs(&[pattern.as_str()])];
        // Both at once; a file has no state.
        let calls = [manager_call("ListUnitsByPatterns", &args), manager_call("ListUnitFilesByPatterns", &args)];
        let listing = self
            .call_all(&calls, |index, reply| match index {
                0 => read_units(reply, prefix),
                _ => Ok(read_files(reply, prefix)?.into_iter().map(|job| (job, None)).collect()),
            })
            .map(|mut lists| {
                let files = lists.pop().unwrap_or_default().into_iter().map(|(job, _)| job).collect();
                Listing { units: lists.pop().unwrap_or_default(), files }
            });
        self.answer(listing, || format!("listing {pattern} over the system bus"))
    }

    /// Whether the service manager answers on the bus (for `check`).
    pub fn probe(&self) -> Result<(), String> {
        let ping = MethodCall {
            destination: SYSTEMD,
            path: MANAGER_PATH,
            interface: "org.freedesktop.DBus.Peer",
            member: "Ping",
            args: &[],
        };
        match self.call(&ping, |_| Ok(())) {
            Ok(()) => Ok(()),
            Err(Failure::Paused) => Err("a connection failed a moment ago".into()),
            Err(Failure::Call(e)) => Err(e.to_string()),
        }
    }

    /// The answer, if the bus gave one; a failure begins (or continues) a
    /// streak, logged once, with what was being done (`what`).
    fn answer<T>(&self, answer: Result<T, Failure>, what: impl FnOnce() -> String) -> Option<T> {
        match answer {
            Ok(answer) => {
                self.note_success();
                Some(answer)
            }
            Err(Failure::Paused) => None,
            Err(Failure::Call(e)) => {
                self.note_failure(&format!("{}: {e}", what()));
                None
            }
        }
    }

    /// `call` on a kept connection, else on a new one; see the module's
    /// documentation for when which is tried.
    fn call<T>(&self, call: &MethodCall, read: impl Fn(&Message) -> Result<T, WireError>) -> Result<T, Failure> {
        let mut replies = self.call_all(std::slice::from_ref(call), |_, reply| read(reply))?;
        replies.pop().ok_or_else(no_reply)
    }

    /// All of `calls` at once, as [`Self::call`]: an error reply to any of
    /// them is the answer.
    fn call_all<T>(
        &self,
        calls: &[MethodCall],
        read: impl Fn(usize, &Message) -> Result<T, WireError>,
    ) -> Result<Vec<T>, Failure> {
        self.answers(calls, read)?.into_iter().collect::<Result<_, _>>().map_err(Failure::Call)
    }

    /// Each of `calls`' answers ([`Connection::call_all`]), made at once on
    /// a kept connection, else on a new one.
    fn answers<T>(
        &self,
        calls: &[MethodCall],
        read: impl Fn(usize, &Message) -> Result<T, WireError>,
    ) -> Result<Vec<Answer<T>>, Failure> {
        let deadline = Instant::now() + self.timeout;
        let kept = self.lock().idle.pop();
        match kept {
            Some(kept) => match self.call_on(kept, calls, deadline, &read) {
                // Closed or garbled: the bus has gone, or restarted.
                Err(e) if !conn::timed_out(&e) => {}
                // A hung bus: a new connection would hang as well.
                answer => return answer.map_err(|e| Failure::Call(CallError::Io(e))),
            },
            None if self.lock().retry_at.is_some_and(|at| Instant::now() < at) => return Err(Failure::Paused),
            None => {}
        }
        let fresh = crate::secure_file::current_uid()
            .ok_or_else(|| std::io::Error::other("cannot tell this process's uid from /proc/self"))
            .and_then(|uid| Connection::open(&self.socket, uid))
            .inspect_err(|_| self.pause())
            .map_err(|e| Failure::Call(CallError::Io(e)))?;
        self.call_on(fresh, calls, deadline, &read).map_err(|e| Failure::Call(CallError::Io(e)))
    }

    /// `calls` on `connection`, which is kept for later calls unless it
    /// failed; a failed one takes every kept one with it, and new ones
    /// wait for the pause.
    fn call_on<T>(
        &self,
        mut connection: Connection,
        calls: &[MethodCall],
        deadline: Instant,
        read: impl Fn(usize, &Message) -> Result<T, WireError>,
    ) -> std::io::Result<Vec<Answer<T>>> {
        let answers = connection.call_all(calls, deadline, read);
        match answers {
            Ok(_) => self.keep(connection),
            Err(_) => {
                self.lock().idle.clear();
                self.pause();
            }
        }
        answers
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A pool is sound after any panic: at worst a connection is lost.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep(&self, connection: Connection) {
        let mut pool = self.lock();
        pool.retry_at = None;
        if pool.idle.len() < MAX_IDLE {
            pool.idle.push(connection);
        }
    }

    fn pause(&self) {
        self.lock().retry_at = Some(Instant::now() + self.retry_pause);
    }

    /// One line per streak, whichever read began it: state and listings
    /// fail together, as they share the connections.
    fn note_failure(&self, what: &str) {
        if !std::mem::replace(&mut self.lock().failing, true) {
            log::warn!("{what}; asking systemctl instead until the bus answers again");
        }
    }

    fn note_success(&self) {
        if std::mem::replace(&mut self.lock().failing, false) {
            log::info!("the system bus answers again: unit state and jobs are read over it");
        }
    }
}

fn no_reply() -> Failure {
    Failure::Call(std::io::Error::other("no reply").into())
}

/// A call of `Properties` on the unit at `path`.
fn property_call<'a>(path: &'a str, member: &'a str, args: &'a [Arg<'a>]) -> MethodCall<'a> {
    MethodCall { destination: SYSTEMD, path, interface: PROPERTIES, member, args }
}

/// A call of the service manager's own object.
fn manager_call<'a>(member: &'a str, args: &'a [Arg<'a>]) -> MethodCall<'a> {
    MethodCall { destination: SYSTEMD, path: MANAGER_PATH, interface: MANAGER, member, args }
}

/// The reply to `ListUnitsByPatterns`: each unit's name and active state,
/// the first and third columns `systemctl list-units` prints of it (a
/// unit loaded without a file, `not-found`, is listed as any other), kept
/// by the rule its output is read by.
fn read_units(reply: &Message, prefix: &Prefix) -> Result<Vec<(JobName, Option<String>)>, WireError> {
    let units = reply.struct_array::<10>("ssssssouso", MAX_LISTED)?;
    let listed = units.iter().filter_map(|unit| match unit {
        [Prop::Str(name), _, _, Prop::Str(active), ..] => {
            Some((parse::listed_job(prefix, name)?, Some(active.to_string())))
        }
        _ => None,
    });
    Ok(listed.collect())
}

/// The reply to `ListUnitFilesByPatterns`: each file's name, which is what
/// `systemctl list-unit-files` prints of its path, kept by the same rule.
fn read_files(reply: &Message, prefix: &Prefix) -> Result<Vec<JobName>, WireError> {
    let files = reply.struct_array::<2>("ss", MAX_LISTED)?;
    let listed = files.iter().filter_map(|file| match file {
        [Prop::Str(path), _] => parse::listed_job(prefix, file_name(path)),
        _ => None,
    });
    Ok(listed.collect())
}

/// What follows a path's last `/` (all of it without one).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The reply to `GetAll`: the properties `systemctl show` is asked for,
/// read by the same rule as its output.
fn read_state(reply: &Message) -> Result<UnitState, WireError> {
    let wanted: Vec<&str> = SHOW_PROPERTIES.split(',').collect();
    let found = reply.properties(&wanted)?;
    let shown: Vec<(&str, String)> = found.iter().map(|(name, value)| (*name, as_shown(name, value))).collect();
    Ok(parse::unit_state_from(shown.iter().map(|(name, value)| (*name, value.as_str()))))
}

/// A unit's state as `ListUnitsByNames` gives it.
#[derive(Debug)]
struct Listed {
    load: String,
    active: String,
    sub: String,
}

impl Listed {
    /// The state of a unit just loaded, with no run: as `GetAll` gives it.
    fn never_ran(&self) -> UnitState {
        let shown = [
            ("LoadState", &*self.load),
            ("ActiveState", &*self.active),
            ("SubState", &*self.sub),
            ("Result", "success"),
            ("NRestarts", "0"),
        ];
        parse::unit_state_from(shown)
    }
}

/// The reply to `ListUnitsByNames` for one unit.
fn read_listed(reply: &Message) -> Result<Listed, WireError> {
    let units = reply.struct_array::<10>("ssssssouso", 1)?;
    let [[_, _, Prop::Str(load), Prop::Str(active), Prop::Str(sub), ..]] = units.as_slice() else {
        return Err(WireError("not one unit's load and active state"));
    };
    Ok(Listed { load: load.to_string(), active: active.to_string(), sub: sub.to_string() })
}

/// A value as `systemctl show --timestamp=unix` prints it: a timestamp
/// (µs) as `@SECONDS`, or nothing when unset (0 or infinity); an id
/// (InvocationID's 16 bytes) as 32 hex digits, nothing when empty.
fn as_shown(name: &str, value: &Prop) -> String {
    match *value {
        Prop::Str(s) => s.to_string(),
        Prop::Int(n) => n.to_string(),
        Prop::Uint(0 | u64::MAX) if name.ends_with("Timestamp") => String::new(),
        Prop::Uint(us) if name.ends_with("Timestamp") => format!("@{}", us / 1_000_000),
        Prop::Uint(n) => n.to_string(),
        Prop::Bool(b) => if b { "yes" } else { "no" }.to_string(),
        Prop::Bytes(id) if id.len() == 16 => id.iter().map(|b| format!("{b:02x}")).collect(),
        Prop::Bytes(_) | Prop::Other => String::new(),
    }
}

/// The unit's object path, escaped as systemd does it (`bus_label_escape`):
/// every byte but a letter, or a digit past the first, as `_` and two hex
/// digits. Asking for a unit by its path loads it, as `systemctl show` does.
pub fn object_path(unit: &str) -> String {
    let mut path = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        path.push('_');
    }
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

/// The socket of a D-Bus address (`DBUS_SYSTEM_BUS_ADDRESS`): its first
/// `unix:path=` (`;` separates addresses, `,` their keys, `%XX` escapes
/// bytes); without an address, [`DEFAULT_SOCKET`].
pub fn socket_path(address: Option<&str>) -> Result<PathBuf, String> {
    let Some(address) = address else { return Ok(PathBuf::from(DEFAULT_SOCKET)) };
    let path = address
        .split(';')
        .filter_map(|one| one.strip_prefix("unix:"))
        .flat_map(|keys| keys.split(','))
        .find_map(|key| key.strip_prefix("path="));
    let unusable = || {
        format!(
            "DBUS_SYSTEM_BUS_ADDRESS '{}' names no unix:path= socket (the only kind jobgate connects to)",
            address.escape_debug()
        )
    };
    let path = unescape(path.ok_or_else(unusable)?).map(|p| PathBuf::from(OsString::from_vec(p)));
    path.filter(|p| p.is_absolute()).ok_or_else(unusable)
}

/// A D-Bus address value with its `%XX` escapes decoded.
fn unescape(value: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::fake::FakeBus;
    use super::wire::{build, Kind};
    use super::*;

    fn unit(name: &str) -> UnitName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job").unit()
    }

    /// Real replies to GetAll("") from systemd 252 in the sandbox (serial
    /// 2), beside what `systemctl show -p SHOW_PROPERTIES` said of the same
    /// unit at the same time: running, failed, a oneshot that remains after
    /// its run, and a unit that does not exist.
    const FIXTURES: [(&str, &[u8], &str); 4] = [
        (
            "sleep",
            include_bytes!("../../../tests/data/dbus/getall-sleep.bin"),
            include_str!("../../../tests/data/dbus/getall-sleep.show"),
        ),
        (
            "fail",
            include_bytes!("../../../tests/data/dbus/getall-fail.bin"),
            include_str!("../../../tests/data/dbus/getall-fail.show"),
        ),
        (
            "remain",
            include_bytes!("../../../tests/data/dbus/getall-remain.bin"),
            include_str!("../../../tests/data/dbus/getall-remain.show"),
        ),
        (
            "missing",
            include_bytes!("../../../tests/data/dbus/getall-missing.bin"),
            include_str!("../../../tests/data/dbus/getall-missing.show"),
        ),
    ];

    #[test]
    fn a_real_reply_reads_as_systemctl_shows_it() {
        for (name, reply, show) in FIXTURES {
            let message = Message::parse(reply).expect("a real reply");
            assert_eq!((message.kind, message.reply_serial), (Kind::Return, Some(2)));
            let state = read_state(&message).expect("properties");
            assert_eq!(state, parse::unit_state(show.as_bytes()), "{name}");
        }
        let failed = read_state(&Message::parse(FIXTURES[1].1).expect("parsed")).expect("state");
        assert_eq!((failed.result.as_str(), failed.exit_status), ("exit-code", Some(3)));
        assert!(failed.run.is_some() && failed.finished.is_some());
    }

    #[test]
    fn values_as_systemctl_prints_them() {
        assert_eq!(as_shown("ExecMainStartTimestamp", &Prop::Uint(1_795_660_424_999_999)), "@1795660424");
        assert_eq!(as_shown("ExecMainExitTimestamp", &Prop::Uint(0)), "");
        assert_eq!(as_shown("ExecMainExitTimestamp", &Prop::Uint(u64::MAX)), "");
        assert_eq!(as_shown("ExecMainStatus", &Prop::Int(-2)), "-2");
        assert_eq!(as_shown("InvocationID", &Prop::Bytes(&[0xab; 16])), "ab".repeat(16));
        assert_eq!(as_shown("InvocationID", &Prop::Bytes(&[])), "");
    }

    #[test]
    fn object_paths_are_escaped_as_systemd_escapes_them() {
        assert_eq!(
            object_path("ci-test-deploy@main.service"),
            "/org/freedesktop/systemd1/unit/ci_2dtest_2ddeploy_40main_2eservice"
        );
        assert_eq!(object_path("1a_b"), "/org/freedesktop/systemd1/unit/_31a_5fb");
        assert_eq!(object_path(""), "/org/freedesktop/systemd1/unit/_");
    }

    #[test]
    fn addresses() {
        assert_eq!(socket_path(None), Ok(PathBuf::from(DEFAULT_SOCKET)));
        let address = "tcp:host=x,port=1;unix:guid=0123,path=/run/my%20bus/socket";
        assert_eq!(socket_path(Some(address)), Ok(PathBuf::from("/run/my bus/socket")));
        for bad in ["unix:abstract=/tmp/dbus-x", "unix:path=relative", "unix:path=/x%2", "unix:path=/x%+1", ""] {
            let e = socket_path(Some(bad)).expect_err(bad);
            assert!(e.contains("names no unix:path= socket"), "{e}");
        }
    }

    /// A running unit's state: the properties among others.
    /// A property as systemd gives it: name, signature, value.
    type Property = (&'static str, &'static str, fn(&mut build::Writer));

    /// A running unit's properties.
    const RUNNING: [Property; 6] = [
        ("Names", "as", |w| w.array(4, |w| w.string("ci-test-a.service"))),
        ("LoadState", "s", |w| w.string("loaded")),
        ("ActiveState", "s", |w| w.string("active")),
        ("SubState", "s", |w| w.string("running")),
        ("InvocationID", "ay", |w| w.array(1, |w| w.buf.extend([0xab; 16]))),
        ("ExecMainStartTimestamp", "t", |w| w.u64(1_795_660_424_000_001)),
    ];

    /// `ListUnitsByNames`'s reply for ci-test-a.service.
    fn listing(serial: u32, active: &str, sub: &str) -> Vec<u8> {
        build::reply(serial, "a(ssssssouso)", |w| {
            w.array(8, |w| {
                w.pad(8);
                let path = object_path("ci-test-a.service");
                for s in ["ci-test-a.service", "A job", "loaded", active, sub, "", &path] {
                    w.string(s);
                }
                w.u32(0);
                w.string("");
                w.string("/");
            })
        })
    }

    /// A loaded unit's path for `GetUnit`, its listing, and its properties
    /// for `Get` (one; those it lacks as systemd's defaults) and `GetAll`.
    fn running(call: &Message) -> Vec<Vec<u8>> {
        let path = "/org/freedesktop/systemd1/unit/ci_2dtest_2da_2eservice";
        let reply = match call.member {
            Some("GetUnit") => {
                let args = build::strings(call).expect("string arguments");
                assert_eq!((call.path, args.as_slice()), (Some(MANAGER_PATH), ["ci-test-a.service"].as_slice()));
                build::reply(call.serial, "o", |w| w.string(path))
            }
            Some("ListUnitsByNames") => {
                assert_eq!(build::string_arrays(call), Ok(vec![vec!["ci-test-a.service"]]));
                listing(call.serial, "active", "running")
            }
            Some("Get") => {
                assert_eq!(call.path, Some(path));
                let args = build::strings(call).expect("string arguments");
                let [interface, name] = args.as_slice() else { panic!("Get takes two arguments: {args:?}") };
                let asked = RUN_PROPERTIES.iter().chain(&BRACKET);
                assert!(asked.clone().any(|p| *p == (interface, name)), "not a run property: {interface} {name}");
                let (_, signature, value) = RUNNING.iter().find(|(n, ..)| n == name).copied().unwrap_or(match *name {
                    "ExecMainStatus" => ("", "i", |w| w.u32(0)),
                    "NRestarts" => ("", "u", |w| w.u32(0)),
                    "ExecMainExitTimestamp" => ("", "t", |w| w.u64(0)),
                    _ => ("", "s", |w| w.string("success")),
                });
                build::reply(call.serial, "v", |w| {
                    w.signature(signature);
                    value(w);
                })
            }
            _ => {
                let args = build::strings(call).expect("string arguments");
                assert_eq!((call.path, call.member, args.as_slice()), (Some(path), Some("GetAll"), [""].as_slice()));
                build::reply(call.serial, "a{sv}", |w| {
                    w.array(8, |w| {
                        RUNNING.iter().for_each(|&(name, signature, value)| w.property(name, signature, value))
                    })
                })
            }
        };
        vec![reply]
    }

    /// `GetAll`s answered by [`changed`]'s fakes.
    static GET_ALLS: AtomicUsize = AtomicUsize::new(0);

    /// `running`, with `GetAll` counted and `changed`'s answer to the rest.
    fn changed(call: &Message, changed: impl Fn(&Message) -> Option<Vec<u8>>) -> Vec<Vec<u8>> {
        if call.member == Some("GetAll") {
            GET_ALLS.fetch_add(1, Ordering::SeqCst);
        }
        changed(call).map_or_else(|| running(call), |reply| vec![reply])
    }

    #[test]
    fn a_state_that_changed_while_it_was_asked_for_is_read_again_at_once() {
        // GetUnit is serial 2, ListUnitsByNames 3, the Gets 4 to 10: the
        // run changes before the last look at it (9).
        fn restarted(call: &Message) -> Vec<Vec<u8>> {
            changed(call, |call| {
                let args = build::strings(call).unwrap_or_default();
                (call.member == Some("Get") && args.get(1) == Some(&"InvocationID") && call.serial > 4).then(|| {
                    build::reply(call.serial, "v", |w| {
                        w.signature("ay");
                        w.array(1, |w| w.buf.extend([0xcd; 16]));
                    })
                })
            })
        }
        // Listed while starting; active by the Gets.
        fn started(call: &Message) -> Vec<Vec<u8>> {
            changed(call, |call| {
                (call.member == Some("ListUnitsByNames")).then(|| listing(call.serial, "activating", "start"))
            })
        }
        for (fake, case) in [(restarted as fn(&Message) -> Vec<Vec<u8>>, "restarted"), (started, "started")] {
            GET_ALLS.store(0, Ordering::SeqCst);
            let fake = FakeBus::start(1, fake);
            let state = fake.bus().unit_state(&unit("ci-test-a")).expect("state");
            assert_eq!(GET_ALLS.load(Ordering::SeqCst), 1, "{case}");
            assert_eq!(state.run.as_ref().map(|r| r.as_str()), Some("ab".repeat(16).as_str()), "{case}");
            assert_eq!((state.active_state.as_str(), state.sub_state.as_str()), ("active", "running"), "{case}");
        }
    }

    #[test]
    fn state_properties_are_those_systemctl_is_asked_for() {
        let run = RUN_PROPERTIES.iter().map(|&(_, name)| name);
        let mut names: Vec<&str> = LISTED_PROPERTIES.into_iter().chain(run).collect();
        let mut shown: Vec<&str> = SHOW_PROPERTIES.split(',').collect();
        names.sort();
        shown.sort();
        assert_eq!(names, shown);
        assert_eq!(RUN_PROPERTIES[0], BRACKET[0]);
    }

    #[test]
    fn state_over_a_kept_connection() {
        let fake = FakeBus::start(1, running);
        let bus = fake.bus();
        for _ in 0..3 {
            let state = bus.unit_state(&unit("ci-test-a")).expect("state");
            assert_eq!((state.active_state.as_str(), state.started), ("active", Some(1_795_660_424)));
            assert_eq!(state.run.as_ref().map(|r| r.as_str()), Some("ab".repeat(16).as_str()));
        }
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    }

    /// A unit systemd has not loaded: `GetUnit` says so, and
    /// `ListUnitsByNames` gives its state (`active` once it has been started
    /// between the two calls, and then its run's properties).
    fn unloaded(call: &Message) -> Vec<Vec<u8>> {
        match call.member {
            Some("GetUnit") => vec![build::error(call.serial, NO_SUCH_UNIT, "Unit ci-test-a.service not loaded.")],
            Some("ListUnitsByNames") if call.serial == 3 => vec![listing(call.serial, "active", "running")],
            Some("ListUnitsByNames") => vec![listing(call.serial, "inactive", "dead")],
            _ => running(call),
        }
    }

    #[test]
    fn an_unloaded_unit_is_not_loaded_for_all_its_properties() {
        // Hello is serial 1: GetUnit 2, ListUnitsByNames 3 (started since),
        // then its run's properties (Gets 4 to 11).
        let fake = FakeBus::start(1, unloaded);
        let bus = fake.bus();
        let started = bus.unit_state(&unit("ci-test-a")).expect("state");
        assert_eq!((started.active_state.as_str(), started.sub_state.as_str()), ("active", "running"));
        // GetUnit 12, ListUnitsByNames 13: inactive, and nothing more is
        // asked.
        let state = bus.unit_state(&unit("ci-test-a")).expect("state");
        let expected = parse::unit_state_from([
            ("LoadState", "loaded"),
            ("ActiveState", "inactive"),
            ("SubState", "dead"),
            ("Result", "success"),
            ("NRestarts", "0"),
        ]);
        assert_eq!(state, expected);
        assert!(state.loaded && state.run.is_none() && state.exit_status.is_none() && state.started.is_none());
    }

    #[test]
    fn a_restarted_bus_is_connected_to_again_at_once() {
        // Each connection answers one state (GetUnit and ListUnitsByNames,
        // then 8 Gets), then the bus "restarts".
        fn once(call: &Message) -> Vec<Vec<u8>> {
            if call.serial > 11 {
                return vec![b"junk that ends the connection.".to_vec()];
            }
            running(call)
        }
        let fake = FakeBus::start(3, once);
        let bus = fake.bus();
        for _ in 0..3 {
            assert!(bus.unit_state(&unit("ci-test-a")).is_some());
        }
        assert_eq!(fake.connections.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_error_reply_is_no_answer_but_keeps_the_connection() {
        fn refuse(call: &Message) -> Vec<Vec<u8>> {
            vec![build::error(call.serial, "org.freedesktop.DBus.Error.AccessDenied", "not you")]
        }
        let fake = FakeBus::start(1, refuse);
        let bus = fake.bus();
        assert!(bus.unit_state(&unit("ci-test-a")).is_none());
        let Err(Failure::Call(e)) = bus.call(&MethodCall { member: "X", ..ping() }, |_| Ok(())) else {
            panic!("an error reply")
        };
        assert_eq!(e.to_string(), "org.freedesktop.DBus.Error.AccessDenied: not you");
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    }

    fn ping() -> MethodCall<'static> {
        MethodCall {
            destination: SYSTEMD,
            path: "/",
            interface: "org.freedesktop.DBus.Peer",
            member: "Ping",
            args: &[],
        }
    }

    fn prefix() -> Prefix {
        Prefix::parse("ci-test-").expect("prefix")
    }

    /// What systemd 252 listed in the sandbox, unit by unit: a running
    /// unit, an instance being started, a unit loaded without a file
    /// (`not-found`, as when another unit wants it), and a name that is no
    /// job.
    const UNITS: [(&str, &str, &str, &str); 4] = [
        ("ci-test-a.service", "loaded", "active", "running"),
        ("ci-test-deploy@x.service", "loaded", "activating", "start"),
        ("ci-test-ghost.service", "not-found", "inactive", "dead"),
        ("ci-test-.service", "loaded", "failed", "failed"),
    ];
    /// `systemctl list-units --all --type=service --no-legend --no-pager
    /// --plain -- 'ci-test-*.service'` of the same units.
    const LIST_UNITS: &str = "\
ci-test-.service         loaded    failed     failed  ci-test-.service
ci-test-a.service        loaded    active     running A job
ci-test-deploy@x.service loaded    activating start   Deploy x
ci-test-ghost.service    not-found inactive   dead    ci-test-ghost.service
";
    /// The unit files as the bus lists them (full paths: a template, an
    /// alias, a masked unit), and as `systemctl list-unit-files` prints
    /// them (file names).
    const FILES: [(&str, &str); 4] = [
        ("/etc/systemd/system/ci-test-masked.service", "masked"),
        ("/etc/systemd/system/ci-test-deploy@.service", "static"),
        ("/etc/systemd/system/ci-test-alias.service", "alias"),
        ("/usr/lib/systemd/system/ci-test-a.service", "static"),
    ];
    const LIST_UNIT_FILES: &str = "\
ci-test-a.service       static   -
ci-test-alias.service   alias    -
ci-test-deploy@.service static   -
ci-test-masked.service  masked   enabled
";

    /// The manager's two listings, for `ci-test-*.service` and no states.
    fn lists(call: &Message) -> Vec<Vec<u8>> {
        assert_eq!((call.path, call.interface), (Some(MANAGER_PATH), Some(MANAGER)));
        assert_eq!(build::string_arrays(call), Ok(vec![vec![], vec!["ci-test-*.service"]]));
        let reply = match call.member {
            Some("ListUnitsByPatterns") => build::reply(call.serial, "a(ssssssouso)", |w| {
                w.array(8, |w| {
                    for (name, load, active, sub) in UNITS {
                        w.pad(8);
                        for s in [name, "A job", load, active, sub, "", &object_path(name)] {
                            w.string(s);
                        }
                        w.u32(0);
                        w.string("");
                        w.string("/");
                    }
                })
            }),
            Some("ListUnitFilesByPatterns") => build::reply(call.serial, "a(ss)", |w| {
                w.array(8, |w| {
                    for (path, state) in FILES {
                        w.pad(8);
                        w.string(path);
                        w.string(state);
                    }
                })
            }),
            other => panic!("an unexpected call: {other:?}"),
        };
        vec![reply]
    }

    #[test]
    fn jobs_over_the_bus_are_those_systemctl_lists() {
        let fake = FakeBus::start(1, lists);
        let bus = fake.bus();
        let listing = bus.listed_jobs(&prefix()).expect("a listing");
        // systemctl sorts what it prints; the caller sorts the jobs.
        let sorted = |mut listing: Listing| {
            listing.units.sort();
            listing.files.sort();
            listing
        };
        let printed = parse::listing(&prefix(), LIST_UNITS.as_bytes(), LIST_UNIT_FILES.as_bytes());
        assert_eq!(sorted(listing.clone()), sorted(printed));
        let units: Vec<(&str, Option<&str>)> =
            listing.units.iter().map(|(job, state)| (job.as_str(), state.as_deref())).collect();
        assert_eq!(
            units,
            [
                ("ci-test-a", Some("active")),
                ("ci-test-deploy@x", Some("activating")),
                ("ci-test-ghost", Some("inactive"))
            ]
        );
        let files: Vec<&str> = listing.files.iter().map(JobName::as_str).collect();
        assert_eq!(files, ["ci-test-masked", "ci-test-alias", "ci-test-a"]);
        assert_eq!(bus.listed_jobs(&prefix()), Some(listing), "again, on the kept connection");
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_listing_longer_than_is_read_is_no_answer() {
        fn long(call: &Message) -> Vec<Vec<u8>> {
            let reply = match call.member {
                Some("ListUnitsByPatterns") => build::reply(call.serial, "a(ssssssouso)", |w| w.array(8, |_| {})),
                _ => build::reply(call.serial, "a(ss)", |w| {
                    w.array(8, |w| {
                        for _ in 0..=MAX_LISTED {
                            w.pad(8);
                            w.string("/etc/systemd/system/ci-test-a.service");
                            w.string("static");
                        }
                    })
                }),
            };
            vec![reply]
        }
        let fake = FakeBus::start(2, long);
        let bus = fake.bus();
        assert_eq!(bus.listed_jobs(&prefix()), None);
        assert!(bus.lock().failing);
        // The connection is in step: kept, and no pause for the next call.
        assert_eq!(bus.listed_jobs(&prefix()), None);
        assert!(bus.lock().retry_at.is_none());
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_refused_listing_is_no_answer() {
        fn refuse_files(call: &Message) -> Vec<Vec<u8>> {
            match call.member {
                Some("ListUnitFilesByPatterns") => {
                    vec![build::error(call.serial, "org.freedesktop.DBus.Error.AccessDenied", "not you")]
                }
                _ => lists(call),
            }
        }
        let fake = FakeBus::start(1, refuse_files);
        let bus = fake.bus();
        assert_eq!(bus.listed_jobs(&prefix()), None);
        assert!(bus.lock().failing);
        assert_eq!(fake.connections.load(Ordering::SeqCst), 1, "an error reply keeps the connection");
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name("/etc/systemd/system/ci-test-a.service"), "ci-test-a.service");
        assert_eq!(file_name("ci-test-a.service"), "ci-test-a.service");
        assert_eq!(file_name("/etc/"), "");
    }

    #[test]
    fn a_hung_bus_costs_one_timeout_then_a_pause() {
        let fake = FakeBus::start(2, |_| Vec::new());
        let bus = fake.bus();
        let started = Instant::now();
        assert!(bus.unit_state(&unit("ci-test-a")).is_none());
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
        // Within the pause: not tried at all.
        let started = Instant::now();
        assert!(matches!(bus.call(&ping(), |_| Ok(())), Err(Failure::Paused)));
        assert!(started.elapsed() < Duration::from_millis(100));
        thread::sleep(Duration::from_millis(300));
        assert!(bus.unit_state(&unit("ci-test-a")).is_none());
        assert_eq!(fake.connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn no_bus_then_a_bus() {
        let fake = FakeBus::start(1, running);
        let missing = SystemBus { socket: fake.socket.with_extension("missing"), ..fake.bus() };
        assert!(missing.unit_state(&unit("ci-test-a")).is_none());
        assert!(missing.lock().failing && missing.lock().retry_at.is_some());
        let bus = SystemBus { socket: fake.socket.clone(), ..missing };
        assert!(bus.unit_state(&unit("ci-test-a")).is_none(), "in the pause");
        thread::sleep(Duration::from_millis(300));
        assert!(bus.unit_state(&unit("ci-test-a")).is_some(), "after it");
        assert!(!bus.lock().failing);
    }
}
