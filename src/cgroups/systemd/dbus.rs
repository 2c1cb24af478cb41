//! A small D-Bus client: just what the systemd cgroup driver needs to talk to systemd's
//! manager object (method calls, their replies and errors, and the `JobRemoved` signal).
//!
//! Why not a crate: berth is one short-lived process per command, and only `create`, `update`
//! and `delete` of a container under the systemd driver speak D-Bus at all. zbus (the well-kept
//! Rust client) brings an async runtime, proc macros and a serde layer for a protocol of which
//! berth uses four method signatures; this file is the part of the wire format those need
//! (the marshalling is tested below against byte strings worked out from the specification:
//! <https://dbus.freedesktop.org/doc/dbus-specification.html>).
//!
//! Transport: a unix stream socket, the `EXTERNAL` SASL mechanism (the server takes our uid from
//! SO_PEERCRED), no unix fd passing. Messages are sent little-endian; replies are read in either
//! byte order.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A D-Bus value of the types the driver sends or may receive.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    /// The element signature (needed for an empty array) and the elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I16(_) => "n".into(),
            Value::U16(_) => "q".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(e, _) => format!("a{e}"),
            Value::Struct(v) => format!("({})", v.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
            Value::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
        }
    }

    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }
}

/// The alignment of a type, from the first character of its signature.
fn align_of(sig: u8) -> usize {
    match sig {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1, // y g v
    }
}

/// The first complete type of a signature and the rest.
fn split_type(sig: &str) -> Result<(&str, &str)> {
    let b = sig.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'a' {
        i += 1;
    }
    let end = match b.get(i) {
        None => bail!("D-Bus signature {sig:?}: incomplete type"),
        Some(b'(') | Some(b'{') => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j) {
                    Some(b'(') | Some(b'{') => depth += 1,
                    Some(b')') | Some(b'}') => {
                        depth -= 1;
                        if depth == 0 {
                            break j + 1;
                        }
                    }
                    Some(_) => {}
                    None => bail!("D-Bus signature {sig:?}: unbalanced"),
                }
                j += 1;
            }
        }
        Some(c) if b"ybnqiuxtdsogvh".contains(c) => i + 1,
        Some(c) => bail!("D-Bus signature {sig:?}: unknown type code {:?}", *c as char),
    };
    Ok((&sig[..end], &sig[end..]))
}

/// Marshalling into a buffer whose offset 0 is 8-aligned in the message (the header and the
/// body both are).
#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    fn pad(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(*b as u32),
            Value::I16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U16(n) => {
                self.pad(2);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::I32(n) => self.u32(*n as u32),
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes())
            }
            Value::Double(d) => {
                self.pad(8);
                self.buf.extend_from_slice(&d.to_le_bytes())
            }
            Value::Str(s) | Value::Path(s) => {
                self.u32(s.len() as u32);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => self.sig(s),
            Value::Array(elem, items) => {
                self.pad(4);
                let at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // The padding to the first element is not part of the length, even when
                // the array is empty.
                self.pad(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for i in items {
                    self.value(i);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
            Value::DictEntry(k, v) => {
                self.pad(8);
                self.value(k);
                self.value(v);
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature());
                self.value(inner);
            }
        }
    }

    fn sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

/// Unmarshalling of one message part (header fields or body).
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    le: bool,
    depth: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8], pos: usize, le: bool) -> Dec<'a> {
        Dec { buf, pos, le, depth: 0 }
    }

    fn align(&mut self, n: usize) -> Result<()> {
        let to = self.pos.next_multiple_of(n);
        if to > self.buf.len() {
            bail!("D-Bus message truncated");
        }
        self.pos = to;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| anyhow!("D-Bus message truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut a: [u8; N] = self.take(N)?.try_into().unwrap();
        if !self.le {
            a.reverse();
        }
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn string(&mut self, len: usize) -> Result<String> {
        let b = self.take(len + 1)?;
        if b[len] != 0 {
            bail!("D-Bus string not NUL-terminated");
        }
        String::from_utf8(b[..len].to_vec()).map_err(|_| anyhow!("D-Bus string not UTF-8"))
    }

    fn sig(&mut self) -> Result<String> {
        let n = self.take(1)?[0] as usize;
        self.string(n)
    }

    /// Every value of a signature, in order.
    pub fn values(&mut self, mut sig: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (t, rest) = split_type(sig)?;
            out.push(self.value(t)?);
            sig = rest;
        }
        Ok(out)
    }

    /// One value of the single complete type `t`.
    pub fn value(&mut self, t: &str) -> Result<Value> {
        // The specification's limit (32 array + 32 struct levels); it keeps a hostile peer
        // from exhausting the stack.
        if self.depth > 64 {
            bail!("D-Bus value nested too deeply");
        }
        self.depth += 1;
        let r = self.value_inner(t);
        self.depth -= 1;
        r
    }

    fn value_inner(&mut self, t: &str) -> Result<Value> {
        let b = t.as_bytes();
        Ok(match b[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => bail!("D-Bus boolean {n}"),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let n = self.u32()? as usize;
                let s = self.string(n)?;
                if b[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => Value::Sig(self.sig()?),
            b'v' => {
                let s = self.sig()?;
                let (inner, rest) = split_type(&s)?;
                if !rest.is_empty() {
                    bail!("D-Bus variant signature {s:?} is not one type");
                }
                Value::variant(self.value(inner)?)
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem = &t[1..];
                self.align(align_of(elem.as_bytes()[0]))?;
                let end = self.pos.checked_add(len).filter(|e| *e <= self.buf.len());
                let end = end.ok_or_else(|| anyhow!("D-Bus array longer than its message"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    bail!("D-Bus array elements overrun its length");
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' => {
                self.align(8)?;
                Value::Struct(self.values(&t[1..t.len() - 1])?)
            }
            b'{' => {
                self.align(8)?;
                let mut kv = self.values(&t[1..t.len() - 1])?;
                if kv.len() != 2 {
                    bail!("D-Bus dict entry {t:?} is not a key and a value");
                }
                let v = kv.pop().unwrap();
                Value::DictEntry(Box::new(kv.pop().unwrap()), Box::new(v))
            }
            c => bail!("D-Bus type code {:?}", c as char),
        })
    }
}

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A received message: the header fields the client looks at, and the body.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub typ: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub body: Vec<Value>,
}

/// A method call, marshalled.
pub fn method_call(serial: u32, dest: &str, path: &str, iface: &str, member: &str, args: &[Value]) -> Vec<u8> {
    let mut body = Enc::default();
    for a in args {
        body.value(a);
    }
    let sig: String = args.iter().map(Value::signature).collect();
    let field = |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::variant(v)]);
    let mut fields = vec![
        field(1, Value::Path(path.into())),
        field(2, Value::str(iface)),
        field(3, Value::str(member)),
        field(6, Value::str(dest)),
    ];
    if !sig.is_empty() {
        fields.push(field(8, Value::Sig(sig)));
    }
    let mut m = Enc::default();
    m.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    m.u32(body.buf.len() as u32);
    m.u32(serial);
    m.value(&Value::Array("(yv)".into(), fields));
    m.pad(8);
    m.buf.extend_from_slice(&body.buf);
    m.buf
}

/// Header fields can be at most 2^26 bytes, like the body; anything bigger is not a peer
/// speaking D-Bus.
const MAX_PART: u32 = 1 << 26;

/// Read one message; `Ok(None)` at EOF before its first byte.
pub fn read_message(r: &mut impl Read) -> Result<Option<Message>> {
    let mut fixed = [0u8; 16];
    match r.read(&mut fixed[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(e).context("read from the D-Bus socket"),
    }
    r.read_exact(&mut fixed[1..]).context("read a D-Bus message header")?;
    let le = match fixed[0] {
        b'l' => true,
        b'B' => false,
        c => bail!("D-Bus message with byte order {c:#x}"),
    };
    let word = |i: usize| {
        let a: [u8; 4] = fixed[i..i + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let (body_len, serial, fields_len) = (word(4), word(8), word(12));
    if body_len > MAX_PART || fields_len > MAX_PART {
        bail!("D-Bus message too large");
    }
    let header_end = (16 + fields_len as usize).next_multiple_of(8);
    let mut buf = fixed.to_vec();
    buf.resize(header_end + body_len as usize, 0);
    r.read_exact(&mut buf[16..]).context("read a D-Bus message")?;
    let mut m = Message {
        typ: fixed[1],
        serial,
        ..Message::default()
    };
    let mut sig = String::new();
    let mut d = Dec::new(&buf[..16 + fields_len as usize], 12, le);
    if let Value::Array(_, fields) = d.value("a(yv)")? {
        for f in fields {
            let Value::Struct(f) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (f.first(), f.get(1)) else {
                continue;
            };
            let s = v.as_str().map(str::to_string);
            match code {
                1 => m.path = s,
                2 => m.interface = s,
                3 => m.member = s,
                4 => m.error_name = s,
                5 => m.reply_serial = v.as_u32(),
                8 => sig = s.unwrap_or_default(),
                _ => {}
            }
        }
    }
    m.body = Dec::new(&buf[header_end..], 0, le).values(&sig)?;
    Ok(Some(m))
}

/// An error reply (`org.freedesktop.systemd1.NoSuchUnit`, ...), kept typed so that callers can
/// tell the expected ones apart.
#[derive(Debug)]
pub struct BusError {
    pub name: String,
    pub message: String,
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for BusError {}

/// Whether `e` is the D-Bus error `name`.
pub fn is_bus_error(e: &anyhow::Error, name: &str) -> bool {
    e.downcast_ref::<BusError>().is_some_and(|b| b.name == name)
}

/// One connection, to a bus daemon (`bus`: Hello and AddMatch are needed) or straight to
/// systemd's private socket.
pub struct Conn {
    r: BufReader<UnixStream>,
    serial: u32,
    /// Signals read while waiting for a reply.
    queued: Vec<Message>,
    bus: bool,
    /// A direct connection whose first call is still to be made (see `call`).
    kick: bool,
}

/// How long any one exchange may take: systemd answers in milliseconds, so this only bounds
/// a hung peer (runc waits 30 s for a job).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long the first call on a direct connection waits before it wakes the server (`call`).
const KICK_AFTER: Duration = Duration::from_millis(20);

/// The header flag of a call whose caller wants no reply.
const NO_REPLY_EXPECTED: u8 = 1;

/// The socket paths of a D-Bus address (`unix:path=/run/dbus/system_bus_socket`,
/// `unix:abstract=...`, several separated by ';'; values %-escaped). Other transports are
/// skipped: systemd is always local.
pub fn parse_address(addr: &str) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    for a in addr.split(';') {
        let Some(kv) = a.strip_prefix("unix:") else { continue };
        for p in kv.split(',') {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let abs = match k {
                "path" => false,
                "abstract" => true,
                _ => continue,
            };
            out.push((abs, unescape(v)));
        }
    }
    out
}

fn unescape(v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn connect_one(abs: bool, path: &[u8]) -> std::io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    if abs {
        use std::os::linux::net::SocketAddrExt;
        let a = std::os::unix::net::SocketAddr::from_abstract_name(path)?;
        UnixStream::connect_addr(&a)
    } else {
        UnixStream::connect(std::ffi::OsStr::from_bytes(path))
    }
}

impl Conn {
    /// Connect to `addr` (a D-Bus address) and authenticate; `bus`: the peer is a bus daemon.
    pub fn open(addr: &str, bus: bool) -> Result<Conn> {
        let mut last = None;
        for (abs, path) in parse_address(addr) {
            match connect_one(abs, &path) {
                Ok(s) => return Conn::over(s, bus).with_context(|| format!("D-Bus connection to {addr}")),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(anyhow!("connect to D-Bus at {addr}: {e}")),
            None => Err(anyhow!("D-Bus address {addr:?}: no unix socket in it")),
        }
    }

    pub fn over(s: UnixStream, bus: bool) -> Result<Conn> {
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        let mut c = Conn {
            r: BufReader::new(s),
            serial: 0,
            queued: Vec::new(),
            bus,
            kick: !bus,
        };
        c.auth()?;
        if bus {
            c.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(c)
    }

    /// SASL EXTERNAL without an identity of our own: the server uses the peer credentials of
    /// the socket, so this also works from a user namespace, where our uid is not the one the
    /// server sees (what sd-bus does). A server that rejects the empty identity (older
    /// dbus-daemon) gets our uid in hex, the classic form.
    fn auth(&mut self) -> Result<()> {
        self.send_raw(b"\0AUTH EXTERNAL\r\n")?;
        let mut line = self.line()?;
        if line == "DATA" {
            self.send_raw(b"DATA\r\n")?;
            line = self.line()?;
        }
        if line.starts_with("REJECTED") {
            let uid: String = nix::unistd::geteuid()
                .as_raw()
                .to_string()
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect();
            self.send_raw(format!("AUTH EXTERNAL {uid}\r\n").as_bytes())?;
            line = self.line()?;
        }
        if !line.starts_with("OK") {
            bail!("D-Bus authentication refused: {line}");
        }
        self.send_raw(b"BEGIN\r\n")
    }

    fn line(&mut self) -> Result<String> {
        let mut l = String::new();
        // bounded: a peer that never ends its line is not a D-Bus server
        (&mut self.r)
            .take(512)
            .read_line(&mut l)
            .context("read D-Bus authentication")?;
        if !l.ends_with("\r\n") {
            bail!("D-Bus authentication: bad line {l:?}");
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    fn send_raw(&mut self, b: &[u8]) -> Result<()> {
        self.r.get_mut().write_all(b).context("write to the D-Bus socket")
    }

    /// The next message; None when `deadline` passes before one begins.
    fn next(&mut self, deadline: Instant) -> Result<Option<Message>> {
        if self.r.buffer().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.r.get_ref().set_read_timeout(Some(left))?;
            match self.r.fill_buf() {
                Ok([]) => bail!("the D-Bus peer closed the connection"),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e).context("read from the D-Bus socket"),
            }
        }
        // A message has begun: the rest of it follows at once.
        self.r.get_ref().set_read_timeout(Some(TIMEOUT))?;
        match read_message(&mut self.r)? {
            Some(m) => Ok(Some(m)),
            None => bail!("the D-Bus peer closed the connection"),
        }
    }

    /// Call a method and wait for its reply; an error reply is a `BusError`. Signals that arrive
    /// meanwhile are kept for `wait_signal`.
    pub fn call(&mut self, dest: &str, path: &str, iface: &str, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.serial += 1;
        let serial = self.serial;
        let msg = method_call(serial, dest, path, iface, member, args);
        self.send_raw(&msg)?;
        let deadline = Instant::now() + TIMEOUT;
        // systemd 252's sd-bus, on a direct connection, leaves a message that came in the same
        // read as the client's BEGIN unprocessed until more data arrives (most first calls
        // over /run/systemd/private in the VM went unanswered). Nothing tells the client when
        // the server is past BEGIN, so a first call without an answer soon is followed by a
        // Ping that wants no reply: the new data wakes the server, which then handles both.
        let mut kick_at = std::mem::take(&mut self.kick).then(|| Instant::now() + KICK_AFTER);
        loop {
            let until = kick_at.map_or(deadline, |k| k.min(deadline));
            let Some(m) = self.next(until)? else {
                if kick_at.take().is_some() {
                    self.serial += 1;
                    let mut ping = method_call(self.serial, dest, "/", "org.freedesktop.DBus.Peer", "Ping", &[]);
                    ping[2] |= NO_REPLY_EXPECTED;
                    self.send_raw(&ping)?;
                    continue;
                }
                bail!("timed out waiting for systemd");
            };
            match m.typ {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m.body),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = m.body.first().and_then(Value::as_str).unwrap_or("").to_string();
                    return Err(BusError {
                        name: m.error_name.unwrap_or_default(),
                        message,
                    }
                    .into());
                }
                SIGNAL => self.queued.push(m),
                _ => {}
            }
        }
    }

    /// The first signal (queued or new) `pick` accepts; the others are dropped.
    pub fn wait_signal<T>(&mut self, timeout: Duration, mut pick: impl FnMut(&Message) -> Option<T>) -> Result<T> {
        for m in std::mem::take(&mut self.queued) {
            if let Some(t) = pick(&m) {
                return Ok(t);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let Some(m) = self.next(deadline)? else {
                bail!("timed out waiting for systemd");
            };
            if m.typ == SIGNAL {
                if let Some(t) = pick(&m) {
                    return Ok(t);
                }
            }
        }
    }

    pub fn is_bus(&self) -> bool {
        self.bus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut e = Enc::default();
        e.value(v);
        e.buf
    }

    fn roundtrip(v: Value) {
        let b = enc(&v);
        let sig = v.signature();
        let got = Dec::new(&b, 0, true).value(&sig).unwrap();
        assert_eq!(got, v, "{sig}");
    }

    #[test]
    fn signatures() {
        let prop = Value::Struct(vec![
            Value::str("PIDs"),
            Value::variant(Value::Array("u".into(), vec![])),
        ]);
        assert_eq!(prop.signature(), "(sv)");
        assert_eq!(Value::Array("(sv)".into(), vec![prop]).signature(), "a(sv)");
        let aux = Value::Array("(sa(sv))".into(), vec![]);
        assert_eq!(aux.signature(), "a(sa(sv))");
        let de = Value::DictEntry(Box::new(Value::str("k")), Box::new(Value::variant(Value::Bool(true))));
        assert_eq!(de.signature(), "{sv}");
    }

    #[test]
    fn split_types() {
        assert_eq!(split_type("ssa(sv)a(sa(sv))").unwrap(), ("s", "sa(sv)a(sa(sv))"));
        assert_eq!(split_type("a(sa(sv))").unwrap(), ("a(sa(sv))", ""));
        assert_eq!(split_type("a{sv}as").unwrap(), ("a{sv}", "as"));
        assert_eq!(split_type("aay").unwrap(), ("aay", ""));
        assert!(split_type("a").is_err());
        assert!(split_type("(ss").is_err());
        assert!(split_type("z").is_err());
    }

    #[test]
    fn basic_encodings() {
        assert_eq!(enc(&Value::Byte(7)), [7]);
        assert_eq!(enc(&Value::Bool(true)), [1, 0, 0, 0]);
        assert_eq!(enc(&Value::I16(-2)), [0xfe, 0xff]);
        assert_eq!(enc(&Value::U64(1)), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(&Value::str("ab")), [2, 0, 0, 0, b'a', b'b', 0]);
        assert_eq!(enc(&Value::Path("/".into())), [1, 0, 0, 0, b'/', 0]);
        assert_eq!(enc(&Value::Sig("a(sv)".into())), [5, b'a', b'(', b's', b'v', b')', 0]);
        // variant: its signature, then the value aligned as the value's type wants
        assert_eq!(enc(&Value::variant(Value::U32(3))), [1, b'u', 0, 0, 3, 0, 0, 0]);
        assert_eq!(
            enc(&Value::variant(Value::U64(u64::MAX))),
            [1, b't', 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn arrays_count_no_leading_padding() {
        // au [5]: length 4, then the element
        assert_eq!(
            enc(&Value::Array("u".into(), vec![Value::U32(5)])),
            [4, 0, 0, 0, 5, 0, 0, 0]
        );
        // a(ss) empty: length 0 and the padding to the (8-aligned) first element
        assert_eq!(enc(&Value::Array("(ss)".into(), vec![])), [0, 0, 0, 0, 0, 0, 0, 0]);
        // at [1]: the length counts the element only, not the 4 bytes of padding before it
        let b = enc(&Value::Array("t".into(), vec![Value::U64(1)]));
        assert_eq!(&b[..4], [8, 0, 0, 0]);
        assert_eq!(b.len(), 16);
        // ay: bytes, the AllowedCPUs form
        assert_eq!(
            enc(&Value::Array("y".into(), vec![Value::Byte(0x0f)])),
            [1, 0, 0, 0, 0x0f]
        );
    }

    #[test]
    fn a_property_struct_at_an_offset() {
        // (sv) after one byte: padded to 8 first
        let mut e = Enc::default();
        e.value(&Value::Byte(1));
        e.value(&Value::Struct(vec![
            Value::str("X"),
            Value::variant(Value::Bool(false)),
        ]));
        assert_eq!(
            e.buf,
            [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'X', 0, 1, b'b', 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn roundtrips() {
        roundtrip(Value::I64(-5));
        roundtrip(Value::Double(1.5));
        roundtrip(Value::U16(65535));
        roundtrip(Value::Struct(vec![
            Value::Byte(1),
            Value::U64(2),
            Value::str("x"),
            Value::Array(
                "(ss)".into(),
                vec![Value::Struct(vec![Value::str("/dev/null"), Value::str("rwm")])],
            ),
        ]));
        roundtrip(Value::Array(
            "{sv}".into(),
            vec![Value::DictEntry(
                Box::new(Value::str("a")),
                Box::new(Value::variant(Value::I32(-1))),
            )],
        ));
        roundtrip(Value::Array("(sa(sv))".into(), vec![]));
        roundtrip(Value::variant(Value::Array(
            "y".into(),
            vec![Value::Byte(1), Value::Byte(2)],
        )));
    }

    #[test]
    fn big_endian_decodes() {
        let b = [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(
            Dec::new(&b, 0, false).values("ut").unwrap(),
            vec![Value::U32(2), Value::U64(9)]
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        // truncated string, string without NUL, array longer than the buffer, bool 2
        assert!(Dec::new(&[5, 0, 0, 0, b'a'], 0, true).value("s").is_err());
        assert!(Dec::new(&[1, 0, 0, 0, b'a', b'b'], 0, true).value("s").is_err());
        assert!(Dec::new(&[255, 0, 0, 0, 1], 0, true).value("ay").is_err());
        assert!(Dec::new(&[2, 0, 0, 0], 0, true).value("b").is_err());
        // a variant claiming two types
        assert!(Dec::new(&[2, b'u', b'u', 0, 0, 0, 0, 0], 0, true).value("v").is_err());
        // nesting beyond the limit: a variant holding a variant holding ...
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep.extend_from_slice(&[1, b'v', 0]);
        }
        assert!(Dec::new(&deep, 0, true).value("v").is_err());
    }

    #[test]
    fn a_method_call_message() {
        let m = method_call(
            1,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StopUnit",
            &[Value::str("a.scope"), Value::str("replace")],
        );
        assert_eq!(&m[..4], [b'l', 1, 0, 1]);
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
        // "a.scope" 4+7+1 = 12, "replace" 4+7+1 = 12
        assert_eq!(body_len, 24);
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 1);
        assert_eq!(m.len() % 8, body_len % 8);
        // our reader takes it back, header fields included
        let got = read_message(&mut &m[..]).unwrap().unwrap();
        assert_eq!(got.typ, METHOD_CALL);
        assert_eq!(got.path.as_deref(), Some("/org/freedesktop/systemd1"));
        assert_eq!(got.interface.as_deref(), Some("org.freedesktop.systemd1.Manager"));
        assert_eq!(got.member.as_deref(), Some("StopUnit"));
        assert_eq!(got.body, vec![Value::str("a.scope"), Value::str("replace")]);
    }

    /// A signal as systemd sends it (sd-bus, little-endian): JobRemoved(uoss).
    fn job_removed(serial: u32, id: u32, job: &str, unit: &str, result: &str) -> Vec<u8> {
        let mut m = method_call(
            serial,
            "x",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "JobRemoved",
            &[
                Value::U32(id),
                Value::Path(job.into()),
                Value::str(unit),
                Value::str(result),
            ],
        );
        m[1] = SIGNAL;
        m
    }

    #[test]
    fn reads_signals_and_eof() {
        let mut all = job_removed(5, 7, "/org/freedesktop/systemd1/job/7", "a.scope", "done");
        all.extend(job_removed(
            6,
            8,
            "/org/freedesktop/systemd1/job/8",
            "b.scope",
            "failed",
        ));
        let mut r = &all[..];
        let a = read_message(&mut r).unwrap().unwrap();
        assert_eq!(a.typ, SIGNAL);
        assert_eq!(a.serial, 5);
        assert_eq!(a.member.as_deref(), Some("JobRemoved"));
        assert_eq!(a.body[1], Value::Path("/org/freedesktop/systemd1/job/7".into()));
        let b = read_message(&mut r).unwrap().unwrap();
        assert_eq!(b.body[3], Value::str("failed"));
        assert!(read_message(&mut r).unwrap().is_none());
        // a header cut short is an error
        assert!(read_message(&mut &all[..20]).is_err());
    }

    #[test]
    fn refuses_huge_lengths() {
        let mut m = job_removed(1, 1, "/j", "u", "done");
        m[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_message(&mut &m[..]).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("unix:path=/run/user/1000/bus"),
            vec![(false, b"/run/user/1000/bus".to_vec())]
        );
        assert_eq!(
            parse_address("unix:abstract=/tmp/dbus-X,guid=12;unix:path=/a%2cb"),
            vec![(true, b"/tmp/dbus-X".to_vec()), (false, b"/a,b".to_vec())]
        );
        assert!(parse_address("tcp:host=localhost,port=1").is_empty());
        // a stray % is kept as it is
        assert_eq!(parse_address("unix:path=/a%"), vec![(false, b"/a%".to_vec())]);
        assert_eq!(parse_address("unix:path=/a%zz"), vec![(false, b"/a%zz".to_vec())]);
    }

    /// A scripted peer over a socketpair: the server side of SASL, then a reply and an error.
    #[test]
    fn talks_to_a_peer() {
        let (a, b) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut r = BufReader::new(b);
            let mut l = Vec::new();
            r.read_until(b'\n', &mut l).unwrap();
            assert_eq!(l, b"\0AUTH EXTERNAL\r\n");
            r.get_mut().write_all(b"DATA\r\n").unwrap();
            l.clear();
            r.read_until(b'\n', &mut l).unwrap();
            assert_eq!(l, b"DATA\r\n");
            r.get_mut().write_all(b"OK 0123\r\n").unwrap();
            l.clear();
            r.read_until(b'\n', &mut l).unwrap();
            assert_eq!(l, b"BEGIN\r\n");
            // the call: answer with a signal first, then the return
            let call = next_call(&mut r);
            assert_eq!(call.member.as_deref(), Some("GetUnit"));
            r.get_mut()
                .write_all(&job_removed(1, 3, "/org/freedesktop/systemd1/job/3", "x.scope", "done"))
                .unwrap();
            let mut ret = method_call(2, "x", "/", "i", "m", &[Value::Path("/unit/x".into())]);
            ret[1] = METHOD_RETURN;
            // reply_serial is header field 5; rebuild the header with it
            ret = with_reply_serial(ret, call.serial);
            r.get_mut().write_all(&ret).unwrap();
            let call = next_call(&mut r);
            let mut err = method_call(3, "x", "/", "i", "m", &[Value::str("Unit y.scope not loaded.")]);
            err[1] = ERROR;
            err = with_reply_serial(err, call.serial);
            err = with_error_name(err, "org.freedesktop.systemd1.NoSuchUnit");
            r.get_mut().write_all(&err).unwrap();
        });
        let mut c = Conn::over(a, false).unwrap();
        let got = c
            .call(
                "d",
                "/org/freedesktop/systemd1",
                "m",
                "GetUnit",
                &[Value::str("x.scope")],
            )
            .unwrap();
        assert_eq!(got, vec![Value::Path("/unit/x".into())]);
        let e = c.call("d", "/", "m", "GetUnit", &[Value::str("y.scope")]).unwrap_err();
        assert!(is_bus_error(&e, "org.freedesktop.systemd1.NoSuchUnit"), "{e}");
        assert!(e.to_string().contains("not loaded"));
        // the signal that came before the first reply is still there
        let r = c
            .wait_signal(Duration::from_millis(10), |m| {
                (m.member.as_deref() == Some("JobRemoved")).then(|| m.body[3].clone())
            })
            .unwrap();
        assert_eq!(r, Value::str("done"));
        peer.join().unwrap();
        // nothing more: a timeout, not a hang
        let e = c.wait_signal(Duration::from_millis(10), |_| Some(())).unwrap_err();
        assert!(
            e.to_string().contains("closed") || e.to_string().contains("timed out"),
            "{e}"
        );
    }

    /// The next call a scripted peer gets, past the Ping a slow first answer draws.
    fn next_call(r: &mut impl Read) -> Message {
        loop {
            let m = read_message(r).unwrap().unwrap();
            if m.member.as_deref() != Some("Ping") {
                return m;
            }
        }
    }

    /// A peer that, like systemd 252 on its private socket, answers the first call only once
    /// more data arrives: the client's Ping (no reply wanted) wakes it.
    #[test]
    fn a_first_call_left_unprocessed_is_woken() {
        let (a, b) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            let mut r = BufReader::new(b);
            let mut l = Vec::new();
            r.read_until(b'\n', &mut l).unwrap();
            r.get_mut().write_all(b"OK 0123\r\n").unwrap();
            l.clear();
            r.read_until(b'\n', &mut l).unwrap();
            let call = read_message(&mut r).unwrap().unwrap();
            let ping = read_message(&mut r).unwrap().unwrap();
            assert_eq!(ping.member.as_deref(), Some("Ping"));
            let mut ret = method_call(9, "x", "/", "i", "m", &[Value::U32(1)]);
            ret[1] = METHOD_RETURN;
            r.get_mut().write_all(&with_reply_serial(ret, call.serial)).unwrap();
        });
        let mut c = Conn::over(a, false).unwrap();
        let t = Instant::now();
        assert_eq!(c.call("d", "/", "i", "m", &[]).unwrap(), vec![Value::U32(1)]);
        assert!(t.elapsed() < Duration::from_secs(5));
        peer.join().unwrap();
    }

    /// Re-marshal a message with header fields replaced: reply serial / error name.
    fn rebuild(m: Vec<u8>, extra: Value) -> Vec<u8> {
        let old = read_message(&mut &m[..]).unwrap().unwrap();
        let mut body = Enc::default();
        for v in &old.body {
            body.value(v);
        }
        let sig: String = old.body.iter().map(Value::signature).collect();
        let field = |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::variant(v)]);
        let mut fields = vec![field(8, Value::Sig(sig)), extra];
        if let Some(n) = old.reply_serial {
            fields.push(field(5, Value::U32(n)));
        }
        let mut e = Enc::default();
        e.buf.extend_from_slice(&[b'l', m[1], 0, 1]);
        e.u32(body.buf.len() as u32);
        e.u32(old.serial);
        e.value(&Value::Array("(yv)".into(), fields));
        e.pad(8);
        e.buf.extend_from_slice(&body.buf);
        e.buf
    }

    fn with_reply_serial(m: Vec<u8>, s: u32) -> Vec<u8> {
        rebuild(m, Value::Struct(vec![Value::Byte(5), Value::variant(Value::U32(s))]))
    }

    fn with_error_name(m: Vec<u8>, n: &str) -> Vec<u8> {
        rebuild(m, Value::Struct(vec![Value::Byte(4), Value::variant(Value::str(n))]))
    }
}
