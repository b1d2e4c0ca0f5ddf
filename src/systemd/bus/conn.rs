//! One connection to the system bus: connect to its socket, authenticate
//! as the process's own uid (SASL EXTERNAL: the bus checks it against the
//! socket's peer credentials), `Hello`, then method calls, each one bounded
//! by a deadline on every read and write.
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
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "{e}"),
            CallError::Reply { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> CallError {
        CallError::Io(e)
    }
}

impl From<WireError> for CallError {
    fn from(e: WireError) -> CallError {
        CallError::Io(io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Whether the bus did not answer in time: a hung bus, which a second
/// connection would not cure. (A socket's timeout is `WouldBlock`.)
pub fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

pub struct Connection {
    stream: UnixStream,
    serial: u32,
}

impl Connection {
    /// Connects to the bus at `socket` as `uid`, ready for calls.
    pub fn open(socket: &Path, uid: u32, deadline: Instant) -> Result<Connection, CallError> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {}: {e}", socket.display())))?;
        let mut connection = Connection { stream, serial: 0 };
        connection.authenticate(uid, deadline)?;
        connection.call_all(&[HELLO], deadline, |_, _| Ok(()))?;
        Ok(connection)
    }

    /// SASL EXTERNAL with the uid in hex-encoded decimal, as the
    /// specification has it; no Unix fd passing is asked for.
    fn authenticate(&mut self, uid: u32, deadline: Instant) -> Result<(), CallError> {
        let id: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
        self.write_by(format!("\0AUTH EXTERNAL {id}\r\n").as_bytes(), deadline)?;
        let line = self.auth_line(deadline)?;
        if !line.starts_with(b"OK ") {
            let said = String::from_utf8_lossy(&line);
            let e =
                io::Error::new(io::ErrorKind::PermissionDenied, format!("refused AUTH EXTERNAL as uid {uid}: {said}"));
            return Err(e.into());
        }
        Ok(self.write_by(b"BEGIN\r\n", deadline)?)
    }

    /// The server's one line of answer, without its CR LF. It sends nothing
    /// more until BEGIN, so nothing past the line is read by mistake.
    fn auth_line(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut chunk = [0u8; 128];
        while !line.ends_with(b"\r\n") {
            if line.len() >= MAX_AUTH_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the bus's AUTH answer is too long"));
            }
            let n = self.read_by(&mut chunk, deadline)?;
            line.extend_from_slice(&chunk[..n]);
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    /// Makes all of `calls` at once (written together; the bus answers
    /// them in turn) and hands each reply to `read`: the answers in the
    /// calls' order. An error reply to any call is the answer, once every
    /// reply has come (the connection stays in step for the next calls).
    /// `read` is given each reply with its call's index; messages that are
    /// no reply to them are passed over.
    pub fn call_all<T>(
        &mut self,
        calls: &[MethodCall],
        deadline: Instant,
        read: impl Fn(usize, &Message) -> Result<T, WireError>,
    ) -> Result<Vec<T>, CallError> {
        let mut serials = Vec::with_capacity(calls.len());
        let mut written = Vec::new();
        for call in calls {
            self.serial = self.serial.checked_add(1).unwrap_or(1);
            serials.push(self.serial);
            written.extend_from_slice(&call.encode(self.serial)?);
        }
        self.write_by(&written, deadline)?;
        let mut replies: Vec<Option<T>> = calls.iter().map(|_| None).collect();
        let (mut waiting, mut skipped, mut refused) = (calls.len(), 0, None);
        while waiting > 0 {
            let bytes = self.read_message(deadline)?;
            let message = Message::parse(&bytes)?;
            let index = message.reply_serial.and_then(|serial| serials.iter().position(|&s| s == serial));
            let index = index.filter(|&i| replies[i].is_none() && matches!(message.kind, Kind::Return | Kind::Error));
            let Some(index) = index else {
                skipped += 1;
                if skipped > MAX_SKIPPED {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "no reply among the bus's messages").into());
                }
                continue;
            };
            waiting -= 1;
            if message.kind == Kind::Error {
                let name = message.error_name.unwrap_or_default().to_string();
                let text = message.first_string().unwrap_or_default().to_string();
                refused.get_or_insert(CallError::Reply { name, message: text });
                continue;
            }
            replies[index] = Some(read(index, &message)?);
        }
        match refused {
            Some(refused) => Err(refused),
            None => Ok(replies.into_iter().flatten().collect()),
        }
    }

    /// One whole message, its length checked before it is read.
    fn read_message(&mut self, deadline: Instant) -> Result<Vec<u8>, CallError> {
        let mut fixed = [0u8; FIXED_HEADER];
        self.read_exact_by(&mut fixed, deadline)?;
        let mut message = vec![0u8; message_len(&fixed)?];
        message[..FIXED_HEADER].copy_from_slice(&fixed);
        self.read_exact_by(&mut message[FIXED_HEADER..], deadline)?;
        Ok(message)
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            filled += self.read_by(&mut buf[filled..], deadline)?;
        }
        Ok(())
    }

    /// One read of at least a byte, or an error by the deadline.
    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            self.stream.set_read_timeout(Some(left(deadline)?))?;
            match self.stream.read(buf) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the bus closed the connection")),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
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

/// The time left until `deadline` (never zero, which would mean no
/// timeout), or a timeout error once it has passed.
fn left(deadline: Instant) -> io::Result<std::time::Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "the bus did not answer in time"));
    }
    Ok(left)
}
