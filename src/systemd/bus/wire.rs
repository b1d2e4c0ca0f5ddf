//! The D-Bus wire format, as far as jobgate speaks it: method calls with
//! string and string-array arguments out; messages in, read as far as
//! jobgate needs them (the fixed header, the header fields, a string body,
//! the `a{sv}` of `Properties.GetAll`, and the arrays of structs of strings
//! and numbers the manager's listings answer with; every other value
//! skipped by its signature).
//!
//! Pure over bytes, no I/O: a message is at most [`MAX_MESSAGE`] bytes,
//! every length and offset is checked against it, nesting is bounded by
//! [`MAX_DEPTH`], nothing is allocated per skipped value, and no input makes
//! it panic (fuzzed by `fuzz/fuzz_targets/dbus_message.rs`). Both byte
//! orders are read, since a message keeps its sender's (systemd on s390x
//! sends big-endian ones); jobgate writes little-endian.
#![forbid(unsafe_code)]

use std::fmt;

/// Most bytes of one message jobgate reads. The protocol allows 128 MiB; a
/// unit's properties (all ~400 of them) are some 14 KiB.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Bytes before the header fields: byte order, type, flags, version, body
/// length, serial, and the length of the fields' array.
pub const FIXED_HEADER: usize = 16;
/// Deepest nesting of containers (arrays, structs, variants) read; the
/// protocol's own limit (32 arrays and 32 structs) adds up to the same.
pub const MAX_DEPTH: u32 = 64;

/// What is wrong with a message (or with a call that cannot be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad D-Bus message: {}", self.0)
    }
}

impl std::error::Error for WireError {}

type Result<T> = std::result::Result<T, WireError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn of(byte: u8) -> Result<Endian> {
        match byte {
            b'l' => Ok(Endian::Little),
            b'B' => Ok(Endian::Big),
            _ => Err(WireError("unknown byte order")),
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(bytes),
            Endian::Big => u32::from_be_bytes(bytes),
        }
    }

    fn u64(self, bytes: [u8; 8]) -> u64 {
        match self {
            Endian::Little => u64::from_le_bytes(bytes),
            Endian::Big => u64::from_be_bytes(bytes),
        }
    }
}

/// A message's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall,
    Return,
    Error,
    Signal,
    /// A type this protocol version does not define: to be ignored.
    Unknown,
}

/// The length of the whole message that begins with these 16 bytes, so a
/// reader knows how much more to read; refused past [`MAX_MESSAGE`].
pub fn message_len(fixed: &[u8; FIXED_HEADER]) -> Result<usize> {
    let endian = Endian::of(fixed[0])?;
    if fixed[3] != 1 {
        return Err(WireError("unknown protocol version"));
    }
    let body = endian.u32([fixed[4], fixed[5], fixed[6], fixed[7]]) as usize;
    let fields = endian.u32([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
    let len = FIXED_HEADER
        .checked_add(fields)
        .and_then(|n| n.checked_next_multiple_of(8))
        .and_then(|n| n.checked_add(body))
        .filter(|&n| n <= MAX_MESSAGE);
    len.ok_or(WireError("message too large"))
}

/// A message read from the bus; its body is read on demand.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub kind: Kind,
    pub serial: u32,
    /// For a reply or an error: the serial of the call it answers.
    pub reply_serial: Option<u32>,
    pub error_name: Option<&'a str>,
    pub path: Option<&'a str>,
    pub interface: Option<&'a str>,
    pub member: Option<&'a str>,
    pub destination: Option<&'a str>,
    /// The body's signature; empty when there is no body.
    pub signature: &'a str,
    buf: &'a [u8],
    body_start: usize,
    endian: Endian,
}

/// Header field codes (the protocol's HEADER_FIELD_*).
mod field {
    pub const PATH: u8 = 1;
    pub const INTERFACE: u8 = 2;
    pub const MEMBER: u8 = 3;
    pub const ERROR_NAME: u8 = 4;
    pub const REPLY_SERIAL: u8 = 5;
    pub const DESTINATION: u8 = 6;
    pub const SIGNATURE: u8 = 8;
}

impl<'a> Message<'a> {
    /// Reads one whole message (exactly `buf`: no byte before or after).
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        let fixed = buf.first_chunk::<FIXED_HEADER>().ok_or(WireError("shorter than its fixed header"))?;
        if message_len(fixed)? != buf.len() {
            return Err(WireError("length differs from its header's"));
        }
        let endian = Endian::of(fixed[0])?;
        let kind = match fixed[1] {
            1 => Kind::MethodCall,
            2 => Kind::Return,
            3 => Kind::Error,
            4 => Kind::Signal,
            0 => return Err(WireError("message type 0")),
            _ => Kind::Unknown,
        };
        let serial = endian.u32([fixed[8], fixed[9], fixed[10], fixed[11]]);
        if serial == 0 {
            return Err(WireError("serial 0"));
        }
        let fields_len = endian.u32([fixed[12], fixed[13], fixed[14], fixed[15]]) as usize;
        // message_len checked these sums already.
        let fields_end = FIXED_HEADER + fields_len;
        let body_start = fields_end.next_multiple_of(8);
        let mut message = Message {
            kind,
            serial,
            reply_serial: None,
            error_name: None,
            path: None,
            interface: None,
            member: None,
            destination: None,
            signature: "",
            buf,
            body_start,
            endian,
        };
        // The fields' array, its length included, read as the a(yv) it is.
        let mut fields = Reader { buf, pos: 12, end: fields_end, endian };
        fields.array(8, |r| message.header_field(r))?;
        if fields.pos != fields_end {
            return Err(WireError("header fields overrun"));
        }
        message.check_required()?;
        Ok(message)
    }

    /// One `(yv)` of the header: the fields jobgate reads, the rest skipped.
    fn header_field(&mut self, r: &mut Reader<'a>) -> Result<()> {
        r.align(8)?;
        let code = r.byte()?;
        let signature = r.signature()?;
        let want = match code {
            field::PATH => "o",
            field::INTERFACE | field::MEMBER | field::ERROR_NAME | field::DESTINATION => "s",
            field::REPLY_SERIAL => "u",
            field::SIGNATURE => "g",
            _ => return r.skip_single(signature, 1),
        };
        if signature != want {
            return Err(WireError("header field of the wrong type"));
        }
        match code {
            field::PATH => self.path = Some(r.string()?),
            field::INTERFACE => self.interface = Some(r.string()?),
            field::MEMBER => self.member = Some(r.string()?),
            field::ERROR_NAME => self.error_name = Some(r.string()?),
            field::DESTINATION => self.destination = Some(r.string()?),
            field::REPLY_SERIAL => self.reply_serial = Some(r.u32()?),
            _ => {
                let body = r.signature()?;
                // The body's signature is a list of complete types.
                let mut rest = body.as_bytes();
                while !rest.is_empty() {
                    let n = type_len(rest, 0, false)?;
                    rest = rest.get(n..).unwrap_or_default();
                }
                self.signature = body;
            }
        }
        Ok(())
    }

    fn check_required(&self) -> Result<()> {
        let ok = match self.kind {
            Kind::MethodCall => self.path.is_some() && self.member.is_some(),
            Kind::Return => self.reply_serial.is_some(),
            Kind::Error => self.reply_serial.is_some() && self.error_name.is_some(),
            Kind::Signal => self.path.is_some() && self.interface.is_some() && self.member.is_some(),
            Kind::Unknown => true,
        };
        if !ok {
            return Err(WireError("a required header field is missing"));
        }
        if self.signature.is_empty() && self.body_start != self.buf.len() {
            return Err(WireError("a body without a signature"));
        }
        Ok(())
    }

    /// A reader over the body, from its first value.
    fn body(&self) -> Reader<'a> {
        Reader { buf: self.buf, pos: self.body_start, end: self.buf.len(), endian: self.endian }
    }

    /// The body's first value, if it is a string (a `Hello` reply's unique
    /// name; an error's message).
    pub fn first_string(&self) -> Option<&'a str> {
        if !self.signature.starts_with('s') {
            return None;
        }
        self.body().string().ok()
    }

    /// A `Properties.GetAll` reply (`a{sv}`): the properties named in
    /// `wanted`, in the reply's order, with their values.
    pub fn properties(&self, wanted: &[&str]) -> Result<Vec<(&'a str, Prop<'a>)>> {
        if self.signature != "a{sv}" {
            return Err(WireError("not a property list (a{sv})"));
        }
        let mut body = self.body();
        let mut found = Vec::new();
        body.array(8, |r| {
            r.align(8)?;
            let name = r.string()?;
            if wanted.contains(&name) {
                found.push((name, r.variant()?));
            } else {
                let signature = r.signature()?;
                r.skip_single(signature, 1)?;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// A `Properties.Get` reply (`v`): the value.
    pub fn property(&self) -> Result<Prop<'a>> {
        if self.signature != "v" {
            return Err(WireError("not a property value (v)"));
        }
        self.body().variant()
    }

    /// A reply whose body is one array of structs of `N` strings, object
    /// paths and `u32`s, given as `fields` (the `ssssssouso` of
    /// `ListUnitsByPatterns`, the `ss` of `ListUnitFilesByPatterns`): each
    /// struct's values in order, `s` and `o` as [`Prop::Str`], `u` as
    /// [`Prop::Uint`]. More than `max` structs is an error, not a shorter
    /// list (a listing cut short would be a wrong one), and so is a byte
    /// after the array.
    pub fn struct_array<const N: usize>(&self, fields: &str, max: usize) -> Result<Vec<[Prop<'a>; N]>> {
        if fields.len() != N || !fields.bytes().all(|c| matches!(c, b's' | b'o' | b'u')) {
            return Err(WireError("not a struct of strings and u32s"));
        }
        let inner = self.signature.strip_prefix("a(").and_then(|s| s.strip_suffix(')'));
        if inner != Some(fields) {
            return Err(WireError("not the array of structs asked for"));
        }
        let mut body = self.body();
        let mut rows = Vec::new();
        body.array(8, |r| {
            if rows.len() >= max {
                return Err(WireError("more structs than are read"));
            }
            rows.push(r.basic_struct::<N>(fields)?);
            Ok(())
        })?;
        if body.pos != body.end {
            return Err(WireError("bytes after the body's value"));
        }
        Ok(rows)
    }
}

/// A property's value, of the types jobgate reads; any other is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prop<'a> {
    /// `s` or `o`
    Str(&'a str),
    /// `i` or `x`
    Int(i64),
    /// `u` or `t`
    Uint(u64),
    /// `b`
    Bool(bool),
    /// `ay`
    Bytes(&'a [u8]),
    Other,
}

/// Reads values in order between two offsets of a message. Alignment is
/// counted from the message's first byte (which the protocol 8-aligns).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Nothing at or past this offset is read.
    end: usize,
    endian: Endian,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.end).ok_or(WireError("truncated"))?;
        let bytes = self.buf.get(self.pos..end).ok_or(WireError("truncated"))?;
        self.pos = end;
        Ok(bytes)
    }

    fn align(&mut self, n: usize) -> Result<()> {
        let to = self.pos.next_multiple_of(n);
        if to > self.end {
            return Err(WireError("truncated"));
        }
        self.pos = to;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| WireError("truncated"))
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.fixed::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(self.endian.u32(self.fixed()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(self.endian.u64(self.fixed()?))
    }

    /// `s` or `o`: a length, UTF-8 without NUL, then a NUL.
    fn string(&mut self) -> Result<&'a str> {
        let len = self.u32()? as usize;
        self.text(len)
    }

    /// `g`: a one-byte length, then as a string.
    fn signature(&mut self) -> Result<&'a str> {
        let len = usize::from(self.byte()?);
        self.text(len)
    }

    fn text(&mut self, len: usize) -> Result<&'a str> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] || bytes.contains(&0) {
            return Err(WireError("string not ended by its NUL"));
        }
        std::str::from_utf8(bytes).map_err(|_| WireError("string not UTF-8"))
    }

    /// An array of elements aligned to `align`: `each` reads one element
    /// and must read past it; the elements must end exactly at the array's
    /// end.
    fn array(&mut self, align: usize, mut each: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        let len = self.u32()? as usize;
        self.align(align)?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.end).ok_or(WireError("array overruns"))?;
        while self.pos < end {
            let before = self.pos;
            each(self)?;
            if self.pos <= before {
                return Err(WireError("array element of no size"));
            }
        }
        if self.pos != end {
            return Err(WireError("array element overruns its array"));
        }
        Ok(())
    }

    /// One struct of `fields` (each `s`, `o` or `u`, checked by the caller).
    fn basic_struct<const N: usize>(&mut self, fields: &str) -> Result<[Prop<'a>; N]> {
        self.align(8)?;
        let mut values = [Prop::Other; N];
        for (value, code) in values.iter_mut().zip(fields.bytes()) {
            *value = match code {
                b'u' => Prop::Uint(u64::from(self.u32()?)),
                _ => Prop::Str(self.string()?),
            };
        }
        Ok(values)
    }

    /// A variant's value: kept for the types of [`Prop`], else skipped.
    fn variant(&mut self) -> Result<Prop<'a>> {
        let signature = self.signature()?;
        Ok(match signature {
            "s" | "o" => Prop::Str(self.string()?),
            "i" => Prop::Int(i64::from(self.u32()? as i32)),
            "x" => Prop::Int(self.u64()? as i64),
            "u" => Prop::Uint(u64::from(self.u32()?)),
            "t" => Prop::Uint(self.u64()?),
            "b" => Prop::Bool(self.u32()? != 0),
            "ay" => {
                let len = self.u32()? as usize;
                Prop::Bytes(self.take(len)?)
            }
            other => {
                self.skip_single(other, 1)?;
                Prop::Other
            }
        })
    }

    /// Skips one value of `signature`, which must be one complete type.
    fn skip_single(&mut self, signature: &str, depth: u32) -> Result<()> {
        let signature = signature.as_bytes();
        if type_len(signature, depth, false)? != signature.len() {
            return Err(WireError("variant signature is not one type"));
        }
        self.skip(signature, depth)
    }

    /// Skips one value of the complete type `sig` (checked by [`type_len`]).
    fn skip(&mut self, sig: &[u8], depth: u32) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(WireError("nested too deep"));
        }
        let first = *sig.first().ok_or(WireError("empty signature"))?;
        match first {
            b'y' => self.take(1).map(drop),
            b'n' | b'q' => self.fixed::<2>().map(drop),
            b'b' | b'i' | b'u' | b'h' => self.fixed::<4>().map(drop),
            b'x' | b't' | b'd' => self.fixed::<8>().map(drop),
            b's' | b'o' => self.string().map(drop),
            b'g' => self.signature().map(drop),
            b'v' => {
                let inner = self.signature()?;
                self.skip_single(inner, depth + 1)
            }
            b'a' => {
                let element = sig.get(1..).unwrap_or_default();
                let align = alignment(element.first().copied().unwrap_or(b'y'));
                match fixed_size(element) {
                    // Fixed-size elements are skipped in one step.
                    Some(size) => {
                        let len = self.u32()? as usize;
                        self.align(align)?;
                        if !len.is_multiple_of(size) {
                            return Err(WireError("array of a fixed-size type with a remainder"));
                        }
                        self.take(len).map(drop)
                    }
                    None => self.array(align, |r| r.skip(element, depth + 1)),
                }
            }
            b'(' | b'{' => {
                self.align(8)?;
                let inner = sig.get(1..sig.len().saturating_sub(1)).unwrap_or_default();
                let mut rest = inner;
                while !rest.is_empty() {
                    let n = type_len(rest, depth + 1, false)?;
                    self.skip(rest.get(..n).unwrap_or_default(), depth + 1)?;
                    rest = rest.get(n..).unwrap_or_default();
                }
                Ok(())
            }
            _ => Err(WireError("unknown type")),
        }
    }
}

/// The alignment of values of the type that starts with `code`.
fn alignment(code: u8) -> usize {
    match code {
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        b'n' | b'q' => 2,
        b'y' | b'g' | b'v' => 1,
        _ => 4,
    }
}

/// The size of a basic fixed-size type, if `sig` is one.
fn fixed_size(sig: &[u8]) -> Option<usize> {
    match sig {
        [b'y'] => Some(1),
        [b'n' | b'q'] => Some(2),
        [b'b' | b'i' | b'u' | b'h'] => Some(4),
        [b'x' | b't' | b'd'] => Some(8),
        _ => None,
    }
}

fn is_basic(code: u8) -> bool {
    matches!(code, b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b'h' | b's' | b'o' | b'g')
}

/// The length of the complete type at the start of `sig`, checked: known
/// codes, closed and non-empty structs, dict entries (only as an array's
/// element: `in_array`) of a basic key and one value, nesting bounded.
fn type_len(sig: &[u8], depth: u32, in_array: bool) -> Result<usize> {
    if depth > MAX_DEPTH {
        return Err(WireError("nested too deep"));
    }
    let first = *sig.first().ok_or(WireError("incomplete signature"))?;
    let rest = sig.get(1..).unwrap_or_default();
    match first {
        b'a' => Ok(1 + type_len(rest, depth + 1, true)?),
        b'(' => {
            let mut i = 1;
            loop {
                match sig.get(i) {
                    None => return Err(WireError("struct not closed")),
                    Some(b')') if i == 1 => return Err(WireError("empty struct")),
                    Some(b')') => return Ok(i + 1),
                    Some(_) => i += type_len(sig.get(i..).unwrap_or_default(), depth + 1, false)?,
                }
            }
        }
        b'{' => {
            if !in_array || !rest.first().is_some_and(|&c| is_basic(c)) {
                return Err(WireError("bad dict entry"));
            }
            let value = type_len(rest.get(1..).unwrap_or_default(), depth + 1, false)?;
            match sig.get(2 + value) {
                Some(b'}') => Ok(3 + value),
                _ => Err(WireError("bad dict entry")),
            }
        }
        b'v' => Ok(1),
        code if is_basic(code) => Ok(1),
        _ => Err(WireError("unknown type in signature")),
    }
}

/// A method call, written little-endian. Every call jobgate makes takes
/// strings, arrays of strings, or nothing.
#[derive(Debug, Clone, Copy)]
pub struct MethodCall<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: &'a [Arg<'a>],
}

/// One argument of a [`MethodCall`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `s`
    Str(&'a str),
    /// `as`: the manager's listings take their states and patterns so.
    Strs(&'a [&'a str]),
}

impl<'a> Arg<'a> {
    fn signature(&self) -> &'static str {
        match self {
            Arg::Str(_) => "s",
            Arg::Strs(_) => "as",
        }
    }

    /// Every string the argument holds.
    fn strings(&self) -> &[&'a str] {
        match self {
            Arg::Str(s) => std::slice::from_ref(s),
            Arg::Strs(list) => list,
        }
    }
}

/// The first call on a connection: the bus answers with the connection's
/// unique name.
pub const HELLO: MethodCall<'static> = MethodCall {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member: "Hello",
    args: &[],
};

impl MethodCall<'_> {
    /// The call's bytes, with `serial` (not 0).
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>> {
        if serial == 0 {
            return Err(WireError("serial 0"));
        }
        let strings = [self.destination, self.path, self.interface, self.member];
        if strings.iter().chain(self.args.iter().flat_map(Arg::strings)).any(|s| s.contains('\0')) {
            return Err(WireError("a string holds a NUL"));
        }
        let signature: String = self.args.iter().map(Arg::signature).collect();
        if signature.len() > 255 {
            return Err(WireError("too many arguments"));
        }
        // The fields start at offset 16, which is 8-aligned: their own
        // alignment is the same as in the message.
        let mut fields = Vec::new();
        put_field(&mut fields, field::PATH, b'o', self.path)?;
        put_field(&mut fields, field::INTERFACE, b's', self.interface)?;
        put_field(&mut fields, field::MEMBER, b's', self.member)?;
        put_field(&mut fields, field::DESTINATION, b's', self.destination)?;
        if !signature.is_empty() {
            pad(&mut fields, 8);
            fields.extend_from_slice(&[field::SIGNATURE, 1, b'g', 0, signature.len() as u8]);
            fields.extend_from_slice(signature.as_bytes());
            fields.push(0);
        }
        let mut body = Vec::new();
        for arg in self.args {
            match arg {
                Arg::Str(s) => put_string(&mut body, s)?,
                Arg::Strs(list) => put_strings(&mut body, list)?,
            }
        }
        let mut message = vec![b'l', 1, 0, 1];
        message.extend_from_slice(&length(body.len())?.to_le_bytes());
        message.extend_from_slice(&serial.to_le_bytes());
        message.extend_from_slice(&length(fields.len())?.to_le_bytes());
        message.extend_from_slice(&fields);
        pad(&mut message, 8);
        message.extend_from_slice(&body);
        if message.len() > MAX_MESSAGE {
            return Err(WireError("message too large"));
        }
        Ok(message)
    }
}

fn length(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| WireError("message too large"))
}

fn pad(buf: &mut Vec<u8>, align: usize) {
    buf.resize(buf.len().next_multiple_of(align), 0);
}

fn put_string(buf: &mut Vec<u8>, s: &str) -> Result<()> {
    pad(buf, 4);
    buf.extend_from_slice(&length(s.len())?.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    Ok(())
}

/// An `as`: the byte length of the strings (which, 4-aligned like the
/// length itself, follow it without padding), then the strings.
fn put_strings(buf: &mut Vec<u8>, strings: &[&str]) -> Result<()> {
    pad(buf, 4);
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    for s in strings {
        put_string(buf, s)?;
    }
    let len = length(buf.len() - at - 4)?.to_le_bytes();
    if let Some(slot) = buf.get_mut(at..at + 4) {
        slot.copy_from_slice(&len);
    }
    Ok(())
}

/// One `(yv)` header field whose variant holds a string-like value.
fn put_field(buf: &mut Vec<u8>, code: u8, type_code: u8, value: &str) -> Result<()> {
    pad(buf, 8);
    buf.extend_from_slice(&[code, 1, type_code, 0]);
    put_string(buf, value)
}

/// Messages as a bus sends them, of either byte order, for tests.
#[cfg(test)]
pub(crate) mod build {
    use super::{field, pad, Message, WireError};

    pub struct Writer {
        pub buf: Vec<u8>,
        pub big: bool,
    }

    impl Writer {
        pub fn pad(&mut self, n: usize) {
            pad(&mut self.buf, n);
        }
        pub fn u32(&mut self, n: u32) {
            self.pad(4);
            let bytes = if self.big { n.to_be_bytes() } else { n.to_le_bytes() };
            self.buf.extend_from_slice(&bytes);
        }
        pub fn u64(&mut self, n: u64) {
            self.pad(8);
            let bytes = if self.big { n.to_be_bytes() } else { n.to_le_bytes() };
            self.buf.extend_from_slice(&bytes);
        }
        pub fn string(&mut self, s: &str) {
            self.u32(s.len() as u32);
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(0);
        }
        pub fn signature(&mut self, s: &str) {
            self.buf.push(s.len() as u8);
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(0);
        }
        /// An array: its length is written after its elements.
        pub fn array(&mut self, align: usize, elements: impl FnOnce(&mut Writer)) {
            self.u32(0);
            let at = self.buf.len() - 4;
            self.pad(align);
            let start = self.buf.len();
            elements(self);
            self.set_u32(at, (self.buf.len() - start) as u32);
        }
        fn set_u32(&mut self, at: usize, n: u32) {
            let bytes = if self.big { n.to_be_bytes() } else { n.to_le_bytes() };
            self.buf[at..at + 4].copy_from_slice(&bytes);
        }
        /// One `{sv}` of a property list.
        pub fn property(&mut self, name: &str, signature: &str, value: impl FnOnce(&mut Writer)) {
            self.pad(8);
            self.string(name);
            self.signature(signature);
            value(self);
        }
    }

    /// A message of `kind` (2 return, 3 error, 4 signal), serial 9, with
    /// `reply_serial` if not 0, string header fields `(code, type, value)`,
    /// a SENDER field (skipped by the reader) and `body` of `signature`.
    pub fn message(
        big: bool,
        kind: u8,
        reply_serial: u32,
        fields: &[(u8, u8, &str)],
        signature: &str,
        body: impl FnOnce(&mut Writer),
    ) -> Vec<u8> {
        let mut w = Writer { buf: vec![if big { b'B' } else { b'l' }, kind, 1, 1], big };
        w.u32(0); // the body's length, set below
        w.u32(9);
        w.array(8, |w| {
            if reply_serial != 0 {
                w.pad(8);
                w.buf.extend_from_slice(&[field::REPLY_SERIAL, 1, b'u', 0]);
                w.u32(reply_serial);
            }
            for &(code, type_code, value) in fields {
                w.pad(8);
                w.buf.extend_from_slice(&[code, 1, type_code, 0]);
                w.string(value);
            }
            if !signature.is_empty() {
                w.pad(8);
                w.buf.extend_from_slice(&[field::SIGNATURE, 1, b'g', 0]);
                w.signature(signature);
            }
            w.pad(8);
            w.buf.extend_from_slice(&[7, 1, b's', 0]);
            w.string(":1.1");
        });
        w.pad(8);
        let start = w.buf.len();
        body(&mut w);
        w.set_u32(4, (w.buf.len() - start) as u32);
        w.buf
    }

    /// A little-endian method return.
    pub fn reply(reply_serial: u32, signature: &str, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        message(false, 2, reply_serial, &[], signature, body)
    }

    pub fn error(reply_serial: u32, name: &str, text: &str) -> Vec<u8> {
        message(false, 3, reply_serial, &[(field::ERROR_NAME, b's', name)], "s", |w| w.string(text))
    }

    /// A call's arguments, all strings (`s...`).
    pub fn strings<'a>(call: &Message<'a>) -> Result<Vec<&'a str>, WireError> {
        if call.signature.bytes().any(|c| c != b's') {
            return Err(WireError("not a list of s"));
        }
        let mut body = call.body();
        call.signature.bytes().map(|_| body.string()).collect()
    }

    /// A call's arguments, each an `as`, as the callee reads them.
    pub fn string_arrays<'a>(call: &Message<'a>) -> Result<Vec<Vec<&'a str>>, WireError> {
        let signature = call.signature.as_bytes();
        if !signature.len().is_multiple_of(2) || signature.chunks(2).any(|c| c != b"as") {
            return Err(WireError("not a list of as"));
        }
        let mut body = call.body();
        let mut arrays = Vec::new();
        for _ in 0..signature.len() / 2 {
            let mut strings = Vec::new();
            body.array(4, |r| {
                strings.push(r.string()?);
                Ok(())
            })?;
            arrays.push(strings);
        }
        if body.pos != body.end {
            return Err(WireError("bytes after the arguments"));
        }
        Ok(arrays)
    }

    /// The bus's NameAcquired, which follows the reply to Hello.
    pub fn name_acquired() -> Vec<u8> {
        let fields = [
            (field::PATH, b'o', "/org/freedesktop/DBus"),
            (field::INTERFACE, b's', "org.freedesktop.DBus"),
            (field::MEMBER, b's', "NameAcquired"),
        ];
        message(false, 4, 0, &fields, "s", |w| w.string(":1.42"))
    }
}

#[cfg(test)]
mod tests {
    use super::build::{message, Writer};
    use super::*;

    fn call<'a>(args: &'a [Arg<'a>]) -> MethodCall<'a> {
        MethodCall {
            destination: "org.freedesktop.systemd1",
            path: "/org/freedesktop/systemd1/unit/ci_2dtest_2dhello_2eservice",
            interface: "org.freedesktop.DBus.Properties",
            member: "GetAll",
            args,
        }
    }

    #[test]
    fn a_call_reads_back_as_written() {
        let bytes = call(&[Arg::Str("")]).encode(7).expect("encoded");
        let message = Message::parse(&bytes).expect("parsed");
        assert_eq!(message.kind, Kind::MethodCall);
        assert_eq!(message.serial, 7);
        assert_eq!(message.path, Some("/org/freedesktop/systemd1/unit/ci_2dtest_2dhello_2eservice"));
        assert_eq!(message.interface, Some("org.freedesktop.DBus.Properties"));
        assert_eq!(message.member, Some("GetAll"));
        assert_eq!(message.destination, Some("org.freedesktop.systemd1"));
        assert_eq!(message.signature, "s");
        assert_eq!(message.first_string(), Some(""));
    }

    #[test]
    fn a_call_without_arguments_has_no_body() {
        let bytes = HELLO.encode(1).expect("encoded");
        // Little-endian, a method call, no flags, version 1, no body, serial 1.
        assert_eq!(bytes[..12], [b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        let message = Message::parse(&bytes).expect("parsed");
        assert_eq!((message.signature, message.first_string()), ("", None));
    }

    #[test]
    fn calls_that_cannot_be_written_are_refused() {
        assert!(call(&[Arg::Str("a\0b")]).encode(1).is_err());
        assert!(call(&[Arg::Strs(&["x", "a\0b"])]).encode(1).is_err());
        assert!(call(&[]).encode(0).is_err());
    }

    #[test]
    fn string_arrays_are_written_as_the_protocol_has_them() {
        let bytes = call(&[Arg::Strs(&[]), Arg::Strs(&["ab"])]).encode(1).expect("encoded");
        let message = Message::parse(&bytes).expect("parsed");
        assert_eq!(message.signature, "asas");
        // An empty array is its length alone; then a length of 7 bytes: the
        // string's own length, its two bytes and its NUL.
        let body = [0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 0];
        assert_eq!(bytes[bytes.len() - body.len()..], body);
        assert_eq!(bytes[4..8], (body.len() as u32).to_le_bytes(), "the body's length");

        let patterns = ["ci-test-*.service", "", "x"];
        let args = [Arg::Strs(&patterns), Arg::Str("s"), Arg::Strs(&["y"])];
        let bytes = call(&args).encode(2).expect("encoded");
        let message = Message::parse(&bytes).expect("parsed");
        assert_eq!(message.signature, "assas");
        let mut body = message.body();
        let mut strings = Vec::new();
        body.array(4, |r| {
            strings.push(r.string()?);
            Ok(())
        })
        .expect("as");
        assert_eq!(strings, patterns);
        assert_eq!(body.string(), Ok("s"));
        let two = call(&[Arg::Strs(&[]), Arg::Strs(&patterns)]).encode(3).expect("encoded");
        let two = Message::parse(&two).expect("parsed");
        assert_eq!(super::build::string_arrays(&two), Ok(vec![vec![], patterns.to_vec()]));
    }

    /// A return for serial 2 with `body` of `signature`.
    fn reply(big: bool, signature: &str, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        message(big, 2, 2, &[], signature, body)
    }

    /// The properties `state` reads, as systemd sends them, among others.
    fn properties(big: bool) -> Vec<u8> {
        reply(big, "a{sv}", |w| {
            w.array(8, |w| {
                w.property("Id", "s", |w| w.string("ci-test-a.service"));
                w.property("Names", "as", |w| w.array(4, |w| w.string("ci-test-a.service")));
                w.property("LoadState", "s", |w| w.string("loaded"));
                w.property("ExecMainStatus", "i", |w| w.u32(-2i32 as u32));
                w.property("InvocationID", "ay", |w| w.array(1, |w| w.buf.extend(1..=16u8)));
                w.property("ExecMainStartTimestamp", "t", |w| w.u64(1_795_394_165_123_456));
                w.property("ExecStart", "a(sasbttttuii)", |w| {
                    w.array(8, |w| {
                        w.pad(8);
                        w.string("/bin/sh");
                        w.array(4, |w| w.string("sh"));
                        w.u32(0);
                        for t in [1, 2, 3, 4] {
                            w.u64(t);
                        }
                        w.u32(5);
                        w.u32(6);
                        w.u32(7);
                    })
                });
                w.property("Nested", "v", |w| {
                    w.signature("a{sv}");
                    w.array(8, |_| {});
                });
            })
        })
    }

    const WANTED: [&str; 4] = ["LoadState", "ExecMainStatus", "InvocationID", "ExecMainStartTimestamp"];

    #[test]
    fn properties_in_either_byte_order() {
        for big in [false, true] {
            let bytes = properties(big);
            let message = Message::parse(&bytes).expect("parsed");
            assert_eq!((message.kind, message.reply_serial, message.serial), (Kind::Return, Some(2), 9));
            let found = message.properties(&WANTED).expect("properties");
            let id: Vec<u8> = (1..=16).collect();
            assert_eq!(
                found,
                [
                    ("LoadState", Prop::Str("loaded")),
                    ("ExecMainStatus", Prop::Int(-2)),
                    ("InvocationID", Prop::Bytes(&id)),
                    ("ExecMainStartTimestamp", Prop::Uint(1_795_394_165_123_456)),
                ],
                "big-endian: {big}"
            );
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error_not_a_panic() {
        let bytes = properties(false);
        for len in 0..bytes.len() {
            assert!(Message::parse(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                if let Ok(message) = Message::parse(&bad) {
                    let _ = message.properties(&WANTED);
                    let _ = message.first_string();
                }
            }
        }
    }

    #[test]
    fn lengths_past_the_limit_are_refused_before_reading() {
        let mut fixed = [b'l', 2, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        fixed[4..8].copy_from_slice(&(MAX_MESSAGE as u32).to_le_bytes());
        assert_eq!(message_len(&fixed), Err(WireError("message too large")));
        fixed[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        fixed[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(message_len(&fixed), Err(WireError("message too large")));
        fixed[0] = b'x';
        assert_eq!(message_len(&fixed), Err(WireError("unknown byte order")));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // A variant holding a variant holding … : 200 deep.
        let bytes = reply(false, "a{sv}", |w| {
            w.array(8, |w| {
                w.pad(8);
                w.string("Deep");
                for _ in 0..200 {
                    w.signature("v");
                }
                w.signature("y");
                w.buf.push(1);
            })
        });
        let message = Message::parse(&bytes).expect("the header is fine");
        assert_eq!(message.properties(&WANTED), Err(WireError("nested too deep")));
        let deep_signature = format!("{}y", "a".repeat(70));
        assert_eq!(type_len(deep_signature.as_bytes(), 0, false), Err(WireError("nested too deep")));
    }

    #[test]
    fn signatures() {
        assert_eq!(type_len(b"a{sv}x", 0, false), Ok(5));
        assert_eq!(type_len(b"(sasbttttuii)", 0, false), Ok(13));
        assert_eq!(type_len(b"aay", 0, false), Ok(3));
        for bad in [&b"{sv}"[..], b"a{vs}", b"a{s}", b"a{svv}", b"()", b"(s", b"a", b"z", b""] {
            assert!(type_len(bad, 0, false).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    /// A `ListUnitsByPatterns` reply: per unit its name, description, load,
    /// active and sub state, followed unit, object path, job id, type, path.
    fn units(big: bool, units: &[(&str, &str)]) -> Vec<u8> {
        reply(big, "a(ssssssouso)", |w| {
            w.array(8, |w| {
                for (i, (name, active)) in units.iter().enumerate() {
                    w.pad(8);
                    for s in [name, "A job", "loaded", active, "dead", "", "/org/freedesktop/systemd1/unit/x"] {
                        w.string(s);
                    }
                    w.u32(i as u32);
                    w.string("");
                    w.string("/");
                }
            })
        })
    }

    const UNIT_FIELDS: &str = "ssssssouso";

    #[test]
    fn arrays_of_structs_in_either_byte_order() {
        for big in [false, true] {
            let bytes = units(big, &[("ci-test-a.service", "active"), ("ci-test-b.service", "inactive")]);
            let message = Message::parse(&bytes).expect("parsed");
            let rows = message.struct_array::<10>(UNIT_FIELDS, 2).expect("units");
            assert_eq!(rows.len(), 2);
            assert_eq!(
                rows[1][..4],
                [Prop::Str("ci-test-b.service"), Prop::Str("A job"), Prop::Str("loaded"), Prop::Str("inactive")]
            );
            assert_eq!(
                (rows[0][7], rows[1][7], rows[1][9]),
                (Prop::Uint(0), Prop::Uint(1), Prop::Str("/")),
                "big-endian: {big}"
            );
            let none = units(big, &[]);
            assert_eq!(Message::parse(&none).expect("parsed").struct_array::<10>(UNIT_FIELDS, 0), Ok(vec![]));
        }
        let files = reply(false, "a(ss)", |w| {
            w.array(8, |w| {
                w.pad(8);
                w.string("/etc/systemd/system/ci-test-a.service");
                w.string("static");
            })
        });
        let rows = Message::parse(&files).expect("parsed").struct_array::<2>("ss", 1).expect("files");
        assert_eq!(rows, [[Prop::Str("/etc/systemd/system/ci-test-a.service"), Prop::Str("static")]]);
    }

    #[test]
    fn an_array_of_structs_is_read_only_as_asked_and_within_its_bounds() {
        let bytes = units(false, &[("a", "active"), ("b", "active"), ("c", "active")]);
        let message = Message::parse(&bytes).expect("parsed");
        assert_eq!(message.struct_array::<10>(UNIT_FIELDS, 2), Err(WireError("more structs than are read")));
        assert!(message.struct_array::<10>(UNIT_FIELDS, 3).is_ok());
        for (fields, n) in [("ss", 2), ("ssssssousx", 10), ("ssssssous", 10)] {
            let e = match n {
                2 => message.struct_array::<2>(fields, 9).err(),
                _ => message.struct_array::<10>(fields, 9).err(),
            };
            assert!(e.is_some(), "{fields}");
        }
        let asked_for_units = reply(false, "a(ss)", |w| w.array(8, |_| {}));
        assert!(Message::parse(&asked_for_units).expect("parsed").struct_array::<10>(UNIT_FIELDS, 9).is_err());
    }

    /// `bytes` with the `u32` at `at` replaced, as a sender might lie.
    fn patched(bytes: &[u8], at: usize, n: u32) -> Vec<u8> {
        let mut bad = bytes.to_vec();
        bad[at..at + 4].copy_from_slice(&n.to_le_bytes());
        bad
    }

    #[test]
    fn hostile_lengths_in_an_array_of_structs_are_errors() {
        let bytes = units(false, &[("ci-test-a.service", "active"), ("ci-test-b.service", "failed")]);
        let start = Message::parse(&bytes).expect("parsed").body_start;
        let array_len = u32::from_le_bytes(bytes[start..start + 4].try_into().expect("4 bytes"));
        // The array's length, then the first struct's first string's (the
        // struct 8-aligned after the length).
        for (at, n, why) in [
            (start, u32::MAX, "array overruns"),
            (start, array_len + 1, "array overruns"),
            (start, array_len - 1, "array element overruns its array"),
            (start, 1, "array element overruns its array"),
            (start + 8, u32::MAX, "truncated"),
            (start + 8, 1 << 20, "truncated"),
            (start + 8, 3, "string not ended by its NUL"),
        ] {
            let bad = patched(&bytes, at, n);
            let message = Message::parse(&bad).expect("the header is unchanged");
            assert_eq!(message.struct_array::<10>(UNIT_FIELDS, 100), Err(WireError(why)), "{n} at {at}");
        }
        // A byte after the array, counted in the body's length.
        let mut longer = bytes.clone();
        longer.push(0);
        let body_len = u32::from_le_bytes(longer[4..8].try_into().expect("4 bytes"));
        let longer = patched(&longer, 4, body_len + 1);
        let message = Message::parse(&longer).expect("parsed");
        assert_eq!(message.struct_array::<10>(UNIT_FIELDS, 100), Err(WireError("bytes after the body's value")));
    }

    #[test]
    fn every_flipped_byte_of_a_listing_is_an_error_or_a_listing() {
        let bytes = units(false, &[("ci-test-a.service", "active"), ("ci-test-b.service", "failed")]);
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[at] ^= flip;
                if let Ok(message) = Message::parse(&bad) {
                    if let Ok(rows) = message.struct_array::<10>(UNIT_FIELDS, 2) {
                        assert!(rows.len() <= 2);
                    }
                }
            }
        }
    }

    #[test]
    fn errors_and_signals() {
        let error = super::build::error(5, "org.freedesktop.DBus.Error.AccessDenied", "no");
        let parsed = Message::parse(&error).expect("parsed");
        assert_eq!(parsed.kind, Kind::Error);
        assert_eq!(parsed.error_name, Some("org.freedesktop.DBus.Error.AccessDenied"));
        assert_eq!(parsed.first_string(), Some("no"));
        let signal = super::build::name_acquired();
        assert_eq!(Message::parse(&signal).map(|m| (m.kind, m.member)), Ok((Kind::Signal, Some("NameAcquired"))));
        let mut nameless = error.clone();
        nameless[1] = 2;
        assert!(Message::parse(&nameless).is_ok(), "a return may have an unknown field");
        let unnamed = message(false, 3, 5, &[], "s", |w| w.string("no"));
        assert_eq!(Message::parse(&unnamed).err(), Some(WireError("a required header field is missing")));
    }
}
