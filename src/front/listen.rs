//! The listening socket systemd passes to `serve` (`Accept=no`): the
//! `LISTEN_PID`/`LISTEN_FDS` protocol of sd_listen_fds(3), read strictly.
//! The one place in jobgate with `unsafe`: taking file descriptor 3.
#![deny(unsafe_code)]

use std::fs;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use super::serve::Listener;

/// The first passed descriptor (SD_LISTEN_FDS_START).
const FIRST_FD: i32 = 3;

/// The socket systemd passed to this process, if it passed one to it.
/// Call before any thread starts (as sd_listen_fds requires).
pub fn passed_listener() -> Result<Option<Listener>, String> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else { return Ok(None) };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None); // meant for another process (our parent)
    }
    match count.parse::<u32>() {
        Ok(1) => {}
        _ => {
            return Err(format!(
                "LISTEN_FDS={count}: expected exactly one socket (one ListenStream= in the socket unit)"
            ))
        }
    }
    let kind = socket_kind(FIRST_FD)?;
    // SAFETY: systemd passed fd 3 to this very process (LISTEN_PID is our
    // pid, LISTEN_FDS is 1), /proc shows it is a listening socket, and
    // nothing in jobgate opens, closes or takes fd 3 before this, which
    // runs once, in main, before any thread starts.
    #[allow(unsafe_code)]
    let inherited = unsafe { OwnedFd::from_raw_fd(FIRST_FD) };
    // The inherited descriptor lacks FD_CLOEXEC: a duplicate has it (std
    // duplicates with F_DUPFD_CLOEXEC), so systemctl and sudo never inherit
    // the listener. The original is closed when `inherited` drops.
    let fd = inherited.try_clone().map_err(|e| format!("fd {FIRST_FD}: {e}"))?;
    drop(inherited);
    Ok(Some(match kind {
        Kind::Tcp => Listener::Tcp(TcpListener::from(fd)),
        Kind::Unix => Listener::Unix(UnixListener::from(fd)),
    }))
}

enum Kind {
    Tcp,
    Unix,
}

/// What /proc says fd `fd` is: a listening TCP socket (IPv4 or IPv6) or a
/// listening Unix stream socket; anything else is an error naming the fd.
fn socket_kind(fd: i32) -> Result<Kind, String> {
    let link = fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|e| format!("fd {fd} (LISTEN_FDS): {e}"))?;
    let link = link.to_string_lossy();
    let inode = link
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| format!("fd {fd} (LISTEN_FDS) is not a socket but {link}"))?;
    // /proc/net/tcp{,6}: "sl local rem st ... inode"; st 0A is LISTEN.
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = fs::read_to_string(table).unwrap_or_default();
        if text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&"0A") && f.get(9) == Some(&inode)
        }) {
            return Ok(Kind::Tcp);
        }
    }
    // /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path";
    // Flags 00010000 is __SO_ACCEPTCON (listening), Type 0001 is STREAM.
    let text = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    if text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(3) == Some(&"00010000") && f.get(4) == Some(&"0001") && f.get(6) == Some(&inode)
    }) {
        return Ok(Kind::Unix);
    }
    Err(format!("fd {fd} (LISTEN_FDS) is a socket, but not a listening TCP or Unix stream socket"))
}
