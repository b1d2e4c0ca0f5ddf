//! Reading a D-Bus message never panics, never takes a value from outside
//! the message, and never keeps a property that was not asked for; and a
//! call jobgate writes, whatever its strings, reads back as written.
#![no_main]

use jobgate::systemd::bus::wire::{message_len, Message, MethodCall, Prop, FIXED_HEADER, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

const WANTED: [&str; 4] = ["LoadState", "ExecMainStatus", "InvocationID", "ExecMainStartTimestamp"];

fuzz_target!(|data: &[u8]| {
    if let Some(fixed) = data.first_chunk::<FIXED_HEADER>() {
        if let Ok(len) = message_len(fixed) {
            assert!((FIXED_HEADER..=MAX_MESSAGE).contains(&len), "length {len} past the bounds");
        }
    }
    if let Ok(message) = Message::parse(data) {
        assert!(data.len() <= MAX_MESSAGE);
        if let Some(text) = message.first_string() {
            assert!(text.len() < data.len());
        }
        if let Ok(found) = message.properties(&WANTED) {
            for (name, value) in found {
                assert!(WANTED.contains(&name), "{name} was not asked for");
                if let Prop::Str(s) = value {
                    assert!(s.len() < data.len());
                }
                if let Prop::Bytes(b) = value {
                    assert!(b.len() < data.len());
                }
            }
        }
    }
    round_trip(data);
});

/// The input, cut at each 0x01, as a call's destination, path, interface,
/// member and arguments.
fn round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or_default();
    let (destination, path, interface, member) = (next(), next(), next(), next());
    let args: Vec<&str> = parts.take(300).collect();
    let call = MethodCall { destination, path, interface, member, args: &args };
    let Ok(bytes) = call.encode(1 + data.len() as u32) else { return };
    let message = Message::parse(&bytes).expect("a call jobgate wrote reads back");
    assert_eq!(
        (message.destination, message.path, message.interface, message.member),
        (Some(destination), Some(path), Some(interface), Some(member))
    );
    assert_eq!(message.signature.len(), args.len());
    assert_eq!(message.first_string(), args.first().copied());
}
