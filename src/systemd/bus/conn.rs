//! One connection to the system bus: connect to its socket, authenticate
//! as the process's own uid (SASL EXTERNAL: the bus checks it against the
//! socket's peer credentials) and `Hello`, written with the first calls,
//! then method calls, each one bounded by a deadline on every read and
//! write. Replies are read through a buffer: one read takes what has come.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use super::wire::{message_len, Kind, Message, MethodCall, WireError, FIXED_HEADER, HELLO};

/// Most bytes of the server's answer to AUTH (`OK <32 hex digits>\r\n`).
const MAX_AUTH_LINE: usize = 512;
/// Most messages read while waiting for a reply (the bus's own signals to
/// this connection, such as NameAcquired after Hello).
const MAX_SKIPPED: usize = 16;

/// Why a call got no answer.
#[derive(Debug)]
pub enum CallError {
    /// The connection failed (closed, reset, timed out, or desynchronised
    /// by a bad message): it is of no further use.
    Io(io::Error),
    /// The bus or the callee answered with an error; the connection is fine.
    Reply { name: String, message: String },
    /// The reply is not one that is read (more units than are listed, say);
    /// the connection is fine.
    Unreadable(WireError),
}

/// One call's answer: what was read of its reply, or why there is none
/// (never [`CallError::Io`]: that fails every call made with it).
pub type Answer<T> = Result<T, CallError>;

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Reply { name, message } => write!(f, "{name}: {message}"),
            CallError::Unreadable(e) => write!(f, "an unreadable reply: {e}"),
        }
    }
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> CallError {
        CallError::Io(e)
    }
}

/// A message that cannot be read leaves the connection out of step.
fn garbled(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Whether the bus did not answer in time: a hung bus, which a second
/// connection would not cure. (A socket's timeout is `WouldBlock`.)
pub fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

pub struct Connection {
    stream: UnixStream,
    serial: u32,
    /// A new connection's uid, until its greeting (AUTH, BEGIN, Hello) has
    /// gone out with its first calls.
    ungreeted: Option<u32>,
    /// Bytes read from the bus and not yet used: a read takes whatever has
    /// come, often several replies at once.
    inbox: Vec<u8>,
}

/// Bytes asked of the socket at least, each time the inbox runs short.
const READ_CHUNK: usize = 4096;

impl Connection {
    /// Connects to the bus at `socket`, to be greeted as `uid` with the
    /// first calls: the bus takes AUTH, BEGIN and Hello written at once
    /// (sd-bus writes them so), which saves the two round trips of waiting
    /// for each answer. Hello's reply then comes among the calls' replies,
    /// and is passed over there like the bus's NameAcquired signal.
    pub fn open(socket: &Path, uid: u32) -> io::Result<Connection> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {}: {e}", socket.display())))?;
        Ok(Connection { stream, serial: 0, ungreeted: Some(uid), inbox: Vec::new() })
    }

    /// SASL EXTERNAL with the uid in hex-encoded decimal, as the
    /// specification has it (no Unix fd passing asked for), then Hello.
    fn greeting(&mut self, uid: u32) -> io::Result<Vec<u8>> {
        let id: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        let mut greeting = format!("\0AUTH EXTERNAL {id}\r\nBEGIN\r\n").into_bytes();
        greeting.extend_from_slice(&HELLO.encode(self.next_serial()).map_err(garbled)?);
        Ok(greeting)
    }

    /// The bus's answer to AUTH: `OK <guid>`, or the connection is refused.
    fn accepted(&mut self, uid: u32, deadline: Instant) -> io::Result<()> {
        let line = self.auth_line(deadline)?;
        if !line.starts_with(b"OK ") {
            let said = String::from_utf8_lossy(&line);
            let e =
                io::Error::new(io::ErrorKind::PermissionDenied, format!("refused AUTH EXTERNAL as uid {uid}: {said}"));
            return Err(e);
        }
        Ok(())
    }

    /// The server's one line of answer, without its CR LF; what follows it
    /// (the first messages) stays in the inbox.
    fn auth_line(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.inbox[searched..].windows(2).position(|pair| pair == b"\r\n") {
                let mut line = self.take(searched + at + 2);
                line.truncate(line.len() - 2);
                return Ok(line);
            }
            searched = self.inbox.len().saturating_sub(1);
            if self.inbox.len() >= MAX_AUTH_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the bus's AUTH answer is too long"));
            }
            self.fill(self.inbox.len() + 1, deadline)?;
        }
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        self.serial
    }

    /// Makes all of `calls` at once (written together; the bus answers
    /// them in turn) and gives each one's answer, in the calls' order: what
    /// `read` made of its reply (given the call's index), or why there is
    /// none (an error reply, or a reply `read` could not use). Messages that
    /// are no reply to them are passed over. An error here leaves the
    /// connection of no further use.
    pub fn call_all<T>(
        &mut self,
        calls: &[MethodCall],
        deadline: Instant,
        read: impl Fn(usize, &Message) -> Result<T, WireError>,
    ) -> io::Result<Vec<Answer<T>>> {
        let ungreeted = self.ungreeted.take();
        let mut written = match ungreeted {
            Some(uid) => self.greeting(uid)?,
            None => Vec::new(),
        };
        let mut serials = Vec::with_capacity(calls.len());
        for call in calls {
            let serial = self.next_serial();
            serials.push(serial);
            written.extend_from_slice(&call.encode(serial).map_err(garbled)?);
        }
        self.write_by(&written, deadline)?;
        if let Some(uid) = ungreeted {
            self.accepted(uid, deadline)?;
        }
        let mut answers: Vec<Option<Answer<T>>> = calls.iter().map(|_| None).collect();
        let (mut waiting, mut skipped) = (calls.len(), 0);
        while waiting > 0 {
            let bytes = self.read_message(deadline)?;
            let message = Message::parse(&bytes).map_err(garbled)?;
            let index = message.reply_serial.and_then(|serial| serials.iter().position(|&s| s == serial));
            let index = index.filter(|&i| answers[i].is_none() && matches!(message.kind, Kind::Return | Kind::Error));
            let Some(index) = index else {
                skipped += 1;
                if skipped > MAX_SKIPPED {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "no reply among the bus's messages"));
                }
                continue;
            };
            waiting -= 1;
            answers[index] = Some(match message.kind {
                Kind::Error => Err(CallError::Reply {
                    name: message.error_name.unwrap_or_default().to_string(),
                    message: message.first_string().unwrap_or_default().to_string(),
                }),
                _ => read(index, &message).map_err(CallError::Unreadable),
            });
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// One whole message, its length checked before it is read.
    fn read_message(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        self.fill(FIXED_HEADER, deadline)?;
        let mut fixed = [0u8; FIXED_HEADER];
        fixed.copy_from_slice(&self.inbox[..FIXED_HEADER]);
        let len = message_len(&fixed).map_err(garbled)?;
        self.fill(len, deadline)?;
        Ok(self.take(len))
    }

    /// The inbox's first `n` bytes, taken out of it.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.inbox.split_off(n);
        std::mem::replace(&mut self.inbox, rest)
    }

    /// Reads until the inbox holds at least `want` bytes, or an error by
    /// the deadline.
    fn fill(&mut self, want: usize, deadline: Instant) -> io::Result<()> {
        while self.inbox.len() < want {
            let had = self.inbox.len();
            self.inbox.resize(had + (want - had).max(READ_CHUNK), 0);
            let read = read_by(&mut self.stream, &mut self.inbox[had..], deadline);
            self.inbox.truncate(had + *read.as_ref().unwrap_or(&0));
            read?;
        }
        Ok(())
    }

    fn write_by(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let mut written = 0;
        while written < bytes.len() {
            self.stream.set_write_timeout(Some(left(deadline)?))?;
            match self.stream.write(&bytes[written..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the bus takes no more")),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One read of at least a byte, or an error by the deadline.
fn read_by(stream: &mut UnixStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        match stream.read(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the bus closed the connection")),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The time left until `deadline` (never zero, which would mean no
/// timeout), or a timeout error once it has passed.
fn left(deadline: Instant) -> io::Result<std::time::Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "the bus did not answer in time"));
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::thread;
    use std::time::Duration;

    use super::super::wire::build;
    use super::*;

    /// A bus at a socket of its own that reads the greeting and one call,
    /// then writes `answer`'s pieces one by one.
    fn bus_writing(name: &str, answer: Vec<Vec<u8>>) -> std::path::PathBuf {
        let socket = std::env::temp_dir().join(format!("jobgate-conn-test-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind");
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut greeting = [0u8; 64];
            let _ = stream.read(&mut greeting);
            for piece in answer {
                let _ = stream.write_all(&piece);
                thread::sleep(Duration::from_millis(5));
            }
            thread::sleep(Duration::from_millis(200));
        });
        socket
    }

    fn ping() -> MethodCall<'static> {
        MethodCall { destination: "x", path: "/", interface: "org.freedesktop.DBus.Peer", member: "Ping", args: &[] }
    }

    #[test]
    fn the_answer_to_auth_may_come_in_pieces_and_with_the_first_replies() {
        // Hello is serial 1, the call 2.
        let mut rest = b"23456789abcdef0123456789abcdef\r\n".to_vec();
        rest.extend(build::reply(1, "s", |w| w.string(":1.42")));
        rest.extend(build::name_acquired());
        rest.extend(build::reply(2, "s", |w| w.string("pong")));
        let socket = bus_writing("pieces", vec![b"OK 01".to_vec(), rest]);
        let mut connection = Connection::open(&socket, 1000).expect("connected");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut answers =
            connection.call_all(&[ping()], deadline, |_, reply| Ok(reply.first_string().map(String::from)));
        let answer = answers.as_mut().map(Vec::pop).expect("an answer");
        assert_eq!(answer.map(|a| a.expect("a reply")), Some(Some("pong".to_string())));
        let _ = std::fs::remove_file(socket);
    }

    #[test]
    fn a_refused_auth_is_a_failed_connection() {
        let socket = bus_writing("refused", vec![b"REJECTED EXTERNAL\r\n".to_vec()]);
        let mut connection = Connection::open(&socket, 1000).expect("connected");
        let deadline = Instant::now() + Duration::from_secs(2);
        let e = connection.call_all(&[ping()], deadline, |_, _| Ok(())).expect_err("a refusal");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(e.to_string(), "refused AUTH EXTERNAL as uid 1000: REJECTED EXTERNAL");
        let _ = std::fs::remove_file(socket);
    }
}
