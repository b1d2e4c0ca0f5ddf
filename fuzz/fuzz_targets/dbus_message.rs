//! Reading a D-Bus message never panics, never takes a value from outside
//! the message, never keeps a property that was not asked for, and never
//! lists more structs than asked for; and a call jobgate writes, whatever
//! its strings, reads back as written.
#![no_main]

use jobgate::systemd::bus::wire::{message_len, Arg, Message, MethodCall, Prop, FIXED_HEADER, MAX_MESSAGE};
use libfuzzer_sys::fuzz_target;

const WANTED: [&str; 4] = ["LoadState", "ExecMainStatus", "InvocationID", "ExecMainStartTimestamp"];
/// Fewer than a message can hold, so that the bound is reached.
const MAX_STRUCTS: usize = 64;

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
        listings(&message, data.len());
    }
    round_trip(data);
});

/// The manager's two listings, read as jobgate reads them.
fn listings(message: &Message, len: usize) {
    let units = message.struct_array::<10>("ssssssouso", MAX_STRUCTS).unwrap_or_default();
    let files = message.struct_array::<2>("ss", MAX_STRUCTS).unwrap_or_default();
    assert!(units.len() <= MAX_STRUCTS && files.len() <= MAX_STRUCTS);
    for value in units.iter().flatten().chain(files.iter().flatten()) {
        match value {
            Prop::Str(s) => assert!(s.len() < len),
            Prop::Uint(n) => assert!(*n <= u64::from(u32::MAX)),
            other => panic!("{other:?} in a struct of strings and u32s"),
        }
    }
}

/// The input, cut at each 0x01, as a call's destination, path, interface,
/// member and arguments; an argument with a 0x02 in it is an array of
/// strings, cut there.
fn round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or_default();
    let (destination, path, interface, member) = (next(), next(), next(), next());
    let lists: Vec<Vec<&str>> = parts.take(300).map(|part| part.split('\u{2}').collect()).collect();
    let args: Vec<Arg> =
        lists.iter().map(|list| if list.len() == 1 { Arg::Str(list[0]) } else { Arg::Strs(list) }).collect();
    let call = MethodCall { destination, path, interface, member, args: &args };
    let Ok(bytes) = call.encode(1 + data.len() as u32) else { return };
    let message = Message::parse(&bytes).expect("a call jobgate wrote reads back");
    assert_eq!(
        (message.destination, message.path, message.interface, message.member),
        (Some(destination), Some(path), Some(interface), Some(member))
    );
    let signature: String = args.iter().map(|a| if let Arg::Str(_) = a { "s" } else { "as" }).collect();
    assert_eq!(message.signature, signature);
    let first = match args.first() {
        Some(Arg::Str(s)) => Some(*s),
        _ => None,
    };
    assert_eq!(message.first_string(), first);
}
