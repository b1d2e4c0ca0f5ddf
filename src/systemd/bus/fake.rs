//! A bus for tests, at a socket of its own, that plays the system bus's
//! part of a connection (AUTH, Hello) and answers every other call as a
//! test says: for the bus client's own tests and for those of its callers.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::wire::{build, message_len, Message, FIXED_HEADER};
use super::SystemBus;

/// A bus at a socket of its own that answers each call with `answer`'s
/// messages (none: it hangs), for up to `connections` connections.
pub struct FakeBus {
    pub socket: PathBuf,
    /// How many connections were made to it.
    pub connections: Arc<AtomicUsize>,
}

impl FakeBus {
    pub fn start(connections: usize, answer: fn(&Message) -> Vec<Vec<u8>>) -> FakeBus {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let socket = std::env::temp_dir().join(format!("jobgate-bus-test-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind");
        let count = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                counted.fetch_add(1, Ordering::SeqCst);
                let Ok(stream) = stream else { return };
                thread::spawn(move || serve(stream, answer));
            }
        });
        FakeBus { socket, connections: count }
    }

    pub fn bus(&self) -> SystemBus {
        SystemBus {
            timeout: Duration::from_millis(300),
            retry_pause: Duration::from_millis(300),
            ..SystemBus::at(self.socket.clone())
        }
    }
}

impl Drop for FakeBus {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// One connection: AUTH, then messages until the client goes.
fn serve(stream: UnixStream, answer: fn(&Message) -> Vec<Vec<u8>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("AUTH");
    assert!(line.starts_with(b"\0AUTH EXTERNAL "), "{line:?}");
    writer.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n").expect("OK");
    let mut begin = [0u8; 7];
    reader.read_exact(&mut begin).expect("BEGIN");
    assert_eq!(&begin, b"BEGIN\r\n");
    loop {
        let mut fixed = [0u8; FIXED_HEADER];
        if reader.read_exact(&mut fixed).is_err() {
            return;
        }
        let mut bytes = vec![0u8; message_len(&fixed).expect("length")];
        bytes[..FIXED_HEADER].copy_from_slice(&fixed);
        reader.read_exact(&mut bytes[FIXED_HEADER..]).expect("message");
        let call = Message::parse(&bytes).expect("a call");
        let replies = if call.member == Some("Hello") {
            vec![build::reply(call.serial, "s", |w| w.string(":1.42")), build::name_acquired()]
        } else {
            answer(&call)
        };
        for reply in replies {
            if writer.write_all(&reply).is_err() {
                return;
            }
        }
    }
}
