//! Whether journald has stored every line of the streams that have ended.
//!
//! A job's stdout and stderr are a stream socket to journald
//! (`/run/systemd/journal/stdout`). When the job's last process exits the
//! socket's writing end is closed, but journald may still have much of it
//! to read: a burst of 100,000 lines is stored up to seconds after the
//! manager's end message. journald reads such a stream to its end and
//! only then closes it, storing every line as it reads it. So while the
//! kernel still holds a journald stream socket whose writer has gone, some
//! ended writer's lines are not all stored; once none is left (and none
//! waits to be accepted), every line of every ended writer is in the
//! journal. That is the state of the sockets, not a guess at timing.
//!
//! The sockets are asked of the kernel with a `NETLINK_SOCK_DIAG` dump of
//! Unix sockets (what `ss -x` shows; no privilege needed), keeping those
//! bound to journald's socket file (by its device and inode, so a socket of
//! the same name in another mount namespace is not taken for it). Where
//! that file or the dump cannot be had (no journald, another network
//! namespace, netlink refused), [`Streams::drained`] says so and the
//! caller falls back to waiting a fixed time.
#![forbid(unsafe_code)]

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{self as rnet, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// journald's socket for stdout streams.
pub const STDOUT_SOCKET: &str = "/run/systemd/journal/stdout";
/// How often the sockets are looked at while waiting.
const POLL: Duration = Duration::from_millis(20);
/// How long one dump may take before it is given up.
const DUMP_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes read of one dump (a host with 100,000 Unix sockets sends
/// about 10 MiB; past this the dump is not trusted).
const MAX_DUMP_BYTES: usize = 32 << 20;

/// What a look at journald's streams found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// No stream whose writer has gone is left unread.
    Drained,
    /// Some are: this many sockets.
    Pending(usize),
    /// The sockets cannot be seen from here.
    Unknown,
}

/// journald's stream sockets, as the kernel shows them.
#[derive(Debug, Clone)]
pub struct Streams {
    socket: PathBuf,
}

impl Default for Streams {
    fn default() -> Streams {
        Streams { socket: PathBuf::from(STDOUT_SOCKET) }
    }
}

impl Streams {
    /// The streams of the journald listening on `socket`.
    pub fn at(socket: &Path) -> Streams {
        Streams { socket: socket.to_path_buf() }
    }

    /// Looks once.
    pub fn drained(&self) -> Drain {
        let Ok(meta) = std::fs::metadata(&self.socket) else { return Drain::Unknown };
        match dump() {
            Ok(sockets) => judge(&sockets, meta.dev(), meta.ino()),
            Err(e) => {
                log::debug!("journald's streams cannot be seen: {e}");
                Drain::Unknown
            }
        }
    }

    /// Waits until journald has read every stream whose writer has gone,
    /// at most until `deadline`; the last look's answer.
    pub fn wait_drained(&self, deadline: Instant) -> Drain {
        loop {
            let drain = self.drained();
            if !matches!(drain, Drain::Pending(_)) || Instant::now() + POLL > deadline {
                return drain;
            }
            thread::sleep(POLL);
        }
    }
}

/// One Unix socket of the dump, with what is needed of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Socket {
    pub state: u8,
    /// The device and inode of the file it is bound to (an accepted socket
    /// shows its listener's).
    pub vfs: Option<(u32, u32)>,
    /// Bytes (or, listening, connections) waiting to be read.
    pub queued: Option<u32>,
    pub shutdown: Option<u8>,
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_LISTEN: u8 = 10;
/// The reading side is shut: the writer has gone (or shut its side).
const RCV_SHUTDOWN: u8 = 1;

/// The rule: a socket of journald's whose writer has gone, or a
/// connection its listener has not yet accepted, is a stream not yet
/// stored. `Unknown` unless the listener itself is seen (else the dump is
/// of another network namespace).
pub fn judge(sockets: &[Socket], dev: u64, ino: u64) -> Drain {
    let ours = |s: &&Socket| s.vfs.is_some_and(|(i, d)| u64::from(i) == ino && u64::from(d) == dev);
    let mut listening = false;
    let mut pending = 0;
    for socket in sockets.iter().filter(ours) {
        match socket.state {
            TCP_LISTEN => {
                listening = true;
                pending += socket.queued.unwrap_or(0) as usize;
            }
            TCP_ESTABLISHED if socket.shutdown.is_some_and(|s| s & RCV_SHUTDOWN != 0) => pending += 1,
            _ => {}
        }
    }
    match (listening, pending) {
        (false, _) => Drain::Unknown,
        (true, 0) => Drain::Drained,
        (true, n) => Drain::Pending(n),
    }
}

// From linux/netlink.h, linux/sock_diag.h and linux/unix_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;
const AF_UNIX: u8 = 1;
const NLMSG_HEADER: usize = 16;
const UNIX_DIAG_MSG: usize = 16;

/// The dump request: every listening and connected Unix stream socket, with
/// its file, queue and shutdown state (the last is always sent).
fn request() -> Vec<u8> {
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
    req.extend_from_slice(&[AF_UNIX, 0, 0, 0]);
    let states = (1u32 << TCP_ESTABLISHED) | (1u32 << TCP_LISTEN);
    req.extend_from_slice(&states.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    req.extend_from_slice(&(UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
    req
}

/// The kernel's Unix sockets of this network namespace.
fn dump() -> io::Result<Vec<Socket>> {
    let fd =
        rnet::socket_with(AddressFamily::NETLINK, SocketType::DGRAM, SocketFlags::CLOEXEC, Some(netlink::SOCK_DIAG))?;
    rnet::sockopt::set_socket_timeout(&fd, rnet::sockopt::Timeout::Recv, Some(DUMP_TIMEOUT))?;
    rnet::connect(&fd, &SocketAddrNetlink::new(0, 0))?;
    rnet::send(&fd, &request(), SendFlags::empty())?;
    let mut sockets = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let (mut read, started) = (0usize, Instant::now());
    loop {
        let (n, _) = rnet::recv(&fd, &mut buf[..], RecvFlags::empty())?;
        read += n;
        if read > MAX_DUMP_BYTES || started.elapsed() > DUMP_TIMEOUT {
            return Err(io::Error::other("the socket dump is too large"));
        }
        if parse_messages(&buf[..n.min(buf.len())], &mut sockets)? {
            return Ok(sockets);
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a malformed sock_diag message")
}

/// Reads the messages of one datagram into `sockets`; true at the dump's end.
pub fn parse_messages(mut datagram: &[u8], sockets: &mut Vec<Socket>) -> io::Result<bool> {
    while datagram.len() >= NLMSG_HEADER {
        let len = u32_at(datagram, 0).ok_or_else(malformed)? as usize;
        let kind = u16_at(datagram, 4).ok_or_else(malformed)?;
        if len < NLMSG_HEADER || len > datagram.len() {
            return Err(malformed());
        }
        let body = &datagram[NLMSG_HEADER..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(body, 0).map_or(0, |e| (e as i32).unsigned_abs());
                return Err(io::Error::from_raw_os_error(errno as i32));
            }
            SOCK_DIAG_BY_FAMILY => sockets.push(parse_socket(body).ok_or_else(malformed)?),
            _ => {}
        }
        datagram = datagram.get(align(len)..).unwrap_or_default();
    }
    Ok(false)
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A `unix_diag_msg` and its attributes.
fn parse_socket(body: &[u8]) -> Option<Socket> {
    let mut socket = Socket { state: *body.get(2)?, ..Socket::default() };
    let mut attrs = body.get(UNIX_DIAG_MSG..)?;
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0)? as usize;
        let kind = u16_at(attrs, 2)?;
        let payload = attrs.get(4..len)?;
        match kind {
            UNIX_DIAG_VFS => socket.vfs = Some((u32_at(payload, 0)?, u32_at(payload, 4)?)),
            UNIX_DIAG_RQLEN => socket.queued = Some(u32_at(payload, 0)?),
            UNIX_DIAG_SHUTDOWN => socket.shutdown = Some(*payload.first()?),
            _ => {}
        }
        attrs = attrs.get(align(len)..).unwrap_or_default();
    }
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align(a.len()), 0);
        a
    }

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((NLMSG_HEADER + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m.resize(align(m.len()), 0);
        m
    }

    fn socket_message(state: u8, vfs: (u32, u32), queued: u32, shutdown: u8) -> Vec<u8> {
        let mut body = vec![AF_UNIX, 1, state, 0];
        body.extend_from_slice(&[0; 12]);
        let mut vfs_payload = vfs.0.to_ne_bytes().to_vec();
        vfs_payload.extend_from_slice(&vfs.1.to_ne_bytes());
        body.extend(attr(UNIX_DIAG_VFS, &vfs_payload));
        body.extend(attr(UNIX_DIAG_RQLEN, &[queued.to_ne_bytes(), 0u32.to_ne_bytes()].concat()));
        body.extend(attr(UNIX_DIAG_SHUTDOWN, &[shutdown]));
        message(SOCK_DIAG_BY_FAMILY, &body)
    }

    #[test]
    fn streams_whose_writer_has_gone_are_pending() {
        let (ino, dev) = (43, 41);
        let mut datagram = socket_message(TCP_LISTEN, (ino, dev), 0, 0);
        datagram.extend(socket_message(TCP_ESTABLISHED, (ino, dev), 0, 2)); // a live stream
        datagram.extend(socket_message(TCP_ESTABLISHED, (ino, 54), 9, 3)); // another journald's
        let mut sockets = Vec::new();
        assert!(!parse_messages(&datagram, &mut sockets).expect("parsed"));
        assert_eq!(judge(&sockets, 41, 43), Drain::Drained);
        let mut ended = socket_message(TCP_ESTABLISHED, (ino, dev), 1_372_076, 3);
        ended.extend(message(NLMSG_DONE, &[0; 4]));
        assert!(parse_messages(&ended, &mut sockets).expect("parsed"));
        assert_eq!(judge(&sockets, 41, 43), Drain::Pending(1));
        // A connection not yet accepted.
        let waiting = socket_message(TCP_LISTEN, (ino, dev), 2, 0);
        let mut sockets = Vec::new();
        parse_messages(&waiting, &mut sockets).expect("parsed");
        assert_eq!(judge(&sockets, 41, 43), Drain::Pending(2));
        // Without journald's listener in view nothing can be said.
        assert_eq!(judge(&sockets, 41, 44), Drain::Unknown);
    }

    #[test]
    fn malformed_dumps_are_errors_not_panics() {
        let mut sockets = Vec::new();
        assert!(parse_messages(&[0xff; 20], &mut sockets).is_err());
        let mut short = socket_message(TCP_LISTEN, (1, 1), 0, 0);
        short[0] = 200;
        assert!(parse_messages(&short, &mut sockets).is_err());
        let mut bad_attr = socket_message(TCP_LISTEN, (1, 1), 0, 0);
        bad_attr[NLMSG_HEADER + UNIX_DIAG_MSG] = 255;
        assert!(parse_messages(&bad_attr, &mut sockets).is_err());
        let error = message(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        assert_eq!(parse_messages(&error, &mut sockets).map_err(|e| e.raw_os_error()), Err(Some(13)));
        for cut in 0..40 {
            let whole = socket_message(TCP_ESTABLISHED, (1, 1), 0, 3);
            let _ = parse_messages(&whole[..cut.min(whole.len())], &mut sockets);
        }
    }
}

#[cfg(test)]
mod probe {
    #[test]
    #[ignore = "looks at this machine's journald: run by hand inside the sandbox"]
    fn probe_this_machine() {
        let streams = super::Streams::default();
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            let _ = super::dump();
        }
        eprintln!("a dump: {:?}, {} sockets", started.elapsed() / 1000, super::dump().map_or(0, |s| s.len()));
        for _ in 0..40 {
            eprintln!("{:?}", streams.drained());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
