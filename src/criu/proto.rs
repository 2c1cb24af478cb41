//! The little of protobuf (proto2 wire format) that CRIU's RPC needs: varints, length-delimited
//! strings and nested messages, repeated fields as repeated keys. An own codec rather than a
//! crate: berth encodes a handful of fields of three messages, and every command's binary and
//! start-up cost is shared by the commands that never checkpoint.

use anyhow::{bail, Result};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// An encoder of one message: fields are appended in the order the caller adds them
/// (protobuf readers accept any order).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(v);
        self
    }

    /// int32: a negative value is sign-extended to 64 bits (ten bytes), as protobuf defines.
    pub fn int32(&mut self, field: u32, v: i32) -> &mut Self {
        self.uint(field, v as i64 as u64)
    }

    pub fn bool(&mut self, field: u32, v: bool) -> &mut Self {
        self.uint(field, v as u64)
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    pub fn message(&mut self, field: u32, m: &Enc) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// One decoded field; unknown fields are kept and ignored by the callers, as protobuf wants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed(u64),
}

impl<'a> Value<'a> {
    pub fn as_u64(self) -> Option<u64> {
        match self {
            Value::Varint(v) | Value::Fixed(v) => Some(v),
            Value::Bytes(_) => None,
        }
    }

    pub fn as_i32(self) -> Option<i32> {
        self.as_u64().map(|v| v as i32)
    }

    pub fn as_bool(self) -> Option<bool> {
        self.as_u64().map(|v| v != 0)
    }

    pub fn as_bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<String> {
        self.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(*pos) else {
            bail!("protobuf: truncated varint")
        };
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    bail!("protobuf: varint longer than 10 bytes")
}

/// Every field of one message, in wire order (a repeated field appears once per element).
pub fn decode(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let field = (key >> 3) as u32;
        if field == 0 {
            bail!("protobuf: field number 0");
        }
        let v = match (key & 7) as u8 {
            VARINT => Value::Varint(read_varint(buf, &mut pos)?),
            LEN => {
                let n = read_varint(buf, &mut pos)?;
                let end = pos
                    .checked_add(n as usize)
                    .filter(|&e| e <= buf.len() && n <= buf.len() as u64);
                let Some(end) = end else {
                    bail!("protobuf: field {field}: length {n} past the end")
                };
                let b = &buf[pos..end];
                pos = end;
                Value::Bytes(b)
            }
            w @ (FIXED64 | FIXED32) => {
                let n = if w == FIXED64 { 8 } else { 4 };
                let Some(b) = buf.get(pos..pos + n) else {
                    bail!("protobuf: field {field}: truncated fixed{}", n * 8)
                };
                pos += n;
                let mut a = [0u8; 8];
                a[..n].copy_from_slice(b);
                Value::Fixed(u64::from_le_bytes(a))
            }
            w => bail!("protobuf: field {field}: unsupported wire type {w}"),
        };
        out.push((field, v));
    }
    Ok(out)
}

/// The last value of `field` (proto2: a repeated scalar's last occurrence wins).
pub fn get<'a>(fields: &[(u32, Value<'a>)], field: u32) -> Option<Value<'a>> {
    fields.iter().rev().find(|(f, _)| *f == field).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_reference_examples() {
        // protobuf's encoding guide: field 1 = 150; field 2 = "testing"
        assert_eq!(Enc::default().uint(1, 150).0, [0x08, 0x96, 0x01]);
        assert_eq!(Enc::default().string(2, "testing").0, b"\x12\x07testing");
        // a nested message: field 3 holding {1: 150}
        let mut inner = Enc::default();
        inner.uint(1, 150);
        assert_eq!(Enc::default().message(3, &inner).0, [0x1a, 0x03, 0x08, 0x96, 0x01]);
        assert_eq!(Enc::default().bool(7, true).0, [0x38, 0x01]);
        // a field number above 15 takes a two-byte key
        assert_eq!(Enc::default().uint(23, 1).0, [0xb8, 0x01, 0x01]);
    }

    #[test]
    fn negative_int32_is_ten_bytes_and_decodes_back() {
        let e = Enc::default().int32(1, -1).clone();
        assert_eq!(e.0.len(), 11);
        assert_eq!(&e.0[1..], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let f = decode(&e.0).unwrap();
        assert_eq!(get(&f, 1).unwrap().as_i32(), Some(-1));
    }

    #[test]
    fn round_trip_with_repeated_and_nested_fields() {
        let mut m = Enc::default();
        let mut a = Enc::default();
        a.string(1, "/dev/null").string(2, "/dev/null");
        let mut b = Enc::default();
        b.string(1, "/data").string(2, "/srv/data");
        m.int32(1, 7).message(23, &a).message(23, &b).bool(3, true).uint(1, 9);
        let f = decode(&m.0).unwrap();
        let mnts: Vec<_> = f
            .iter()
            .filter(|(n, _)| *n == 23)
            .map(|(_, v)| v.as_bytes().unwrap())
            .collect();
        assert_eq!(mnts.len(), 2);
        let b2 = decode(mnts[1]).unwrap();
        assert_eq!(get(&b2, 2).unwrap().as_str().as_deref(), Some("/srv/data"));
        assert_eq!(get(&f, 3).unwrap().as_bool(), Some(true));
        // the last occurrence of a scalar wins
        assert_eq!(get(&f, 1).unwrap().as_u64(), Some(9));
    }

    #[test]
    fn skips_fixed_fields_and_refuses_bad_input() {
        // fixed32 field 4 and fixed64 field 5 are read over, then field 1
        let buf = [0x25, 1, 0, 0, 0, 0x29, 2, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x05];
        let f = decode(&buf).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(get(&f, 5).unwrap().as_u64(), Some(2));
        assert_eq!(get(&f, 1).unwrap().as_u64(), Some(5));
        assert!(decode(&[0x08]).is_err(), "truncated varint");
        assert!(decode(&[0x08, 0x80]).is_err(), "truncated varint continuation");
        assert!(decode(&[0x12, 0x05, b'a']).is_err(), "length past the end");
        assert!(decode(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(decode(&[0x0b]).is_err(), "group wire type");
        assert!(decode(&[0x00, 0x00]).is_err(), "field 0");
        assert!(decode(&[0x80; 11]).is_err(), "overlong varint");
        assert!(decode(&[0x2d, 1, 2]).is_err(), "truncated fixed32");
        assert!(decode(&[]).unwrap().is_empty());
    }
}
