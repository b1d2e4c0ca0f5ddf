//! jobgate's caps in one place, and what each costs the host. The shipped
//! units' `TasksMax=` and `MemoryMax=` are derived here from the caps (a
//! test holds `contrib/systemd/*.service` to them), so that a load the caps
//! allow never meets a limit of the unit first.
#![forbid(unsafe_code)]

/// Connections `serve` answers at once; past it, 503. Also the socket
/// units' `MaxConnections=`.
pub const MAX_CONNECTIONS: usize = 64;

/// `follow` streams at once by default (`--max-follows`); each is also one
/// of the connections, so short requests keep the rest.
pub const DEFAULT_MAX_FOLLOWS: usize = 16;

// One token holds at most its fair share of the streams (`follow::share`), and
// alone it may hold them all: `--max-follows-per-token` is only a ceiling
// over that, by default `--max-follows`; so no cap of its own here.

/// Most bytes of lines one answer holds in memory: a larger `logs` answer
/// is streamed, a `tail` answer ends there (its client goes on from its
/// cursor).
pub const HOLD_BYTES: usize = 1 << 20;

/// Journal reads one request makes at once, at most: a long finished run is
/// read in three parts started together.
pub const READS_PER_REQUEST: usize = 3;

/// Tasks one journal read takes: the child (journalctl), the watchdog that
/// ends it in time, and the thread that drains its stderr.
pub const TASKS_PER_READ: usize = 3;

/// Tasks one request takes at a moment, at most: its connection thread and
/// its journal reads. (A `follow` stream takes fewer: its thread, the
/// read-ahead thread, one read, and a `systemctl show` with its watchdog.)
pub const TASKS_PER_REQUEST: usize = 1 + READS_PER_REQUEST * TASKS_PER_READ;

/// Memory one journal read takes, in MiB: journalctl's own (about 1 MiB
/// measured; its journal files are mapped, and those pages can be
/// reclaimed), the pipe, and the reader's buffer.
pub const MIB_PER_READ: usize = 2;

/// Memory one request takes at a moment, in MiB, at most: the lines it
/// holds, the answer made of them (JSON escapes and the growing buffer
/// take up to twice as much again), its journal reads, and its thread.
pub const MIB_PER_REQUEST: usize = 3 * HOLD_BYTES / (1 << 20) + READS_PER_REQUEST * MIB_PER_READ + 1;

/// The process without requests, in MiB (binary, tables, allocator).
pub const BASE_MIB: usize = 16;

/// `TasksMax=` for a process that answers `connections` at once.
pub const fn tasks_max(connections: usize) -> usize {
    1 + connections * TASKS_PER_REQUEST
}

/// `MemoryMax=` (MiB) for a process that answers `connections` at once.
pub const fn memory_max_mib(connections: usize) -> usize {
    BASE_MIB + connections * MIB_PER_REQUEST
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `key=` in a unit file.
    fn setting(unit: &str, key: &str) -> Option<String> {
        unit.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')).map(str::to_string))
    }

    #[test]
    fn shipped_units_agree_with_the_caps() {
        let serving = [
            ("jobgate.service", include_str!("../contrib/systemd/jobgate.service")),
            ("jobgate-http.service", include_str!("../contrib/systemd/jobgate-http.service")),
            ("jobgate-polkit.service", include_str!("../contrib/systemd/jobgate-polkit.service")),
            ("jobgate-fcgiwrap.service", include_str!("../contrib/systemd/jobgate-fcgiwrap.service")),
        ];
        for (name, unit) in serving {
            let tasks = tasks_max(MAX_CONNECTIONS).to_string();
            let memory = format!("{}M", memory_max_mib(MAX_CONNECTIONS));
            assert_eq!(setting(unit, "TasksMax").as_deref(), Some(tasks.as_str()), "{name}");
            assert_eq!(setting(unit, "MemoryMax").as_deref(), Some(memory.as_str()), "{name}");
        }
        // One process per connection, with inetd's own watchdog thread.
        let inetd = include_str!("../contrib/systemd/jobgate@.service");
        assert_eq!(setting(inetd, "TasksMax"), Some((tasks_max(1) + 1).to_string()), "jobgate@.service");
        assert_eq!(setting(inetd, "MemoryMax"), Some(format!("{}M", memory_max_mib(1))), "jobgate@.service");
        let socket = include_str!("../contrib/systemd/jobgate.socket");
        assert_eq!(setting(socket, "MaxConnections"), Some(MAX_CONNECTIONS.to_string()), "jobgate.socket");
        // Behind a proxy, the proxy is the only source.
        assert_eq!(setting(socket, "MaxConnectionsPerSource"), Some(MAX_CONNECTIONS.to_string()), "jobgate.socket");
        let site = include_str!("../contrib/nginx/jobgate.conf");
        assert!(
            site.contains(&format!("server 127.0.0.1:8000 max_conns={MAX_CONNECTIONS};")),
            "contrib/nginx/jobgate.conf"
        );
    }

    #[test]
    fn a_follow_takes_no_more_than_a_request() {
        let follow = 1 + 1 + TASKS_PER_READ + 2;
        assert!(follow <= TASKS_PER_REQUEST);
    }
}
