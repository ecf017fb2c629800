//! CBOR (RFC 8949) codec between bytes and [`serde_json::Value`].
//!
//! The server works on the JSON shapes of the AWS APIs; AWS's CBOR protocols are served by
//! converting at the edge:
//!
//! - Kinesis `application/x-amz-cbor-1.1` (Java SDK): blobs are byte strings, timestamps are
//!   tag 1 wrapping integer epoch milliseconds.
//! - Smithy `rpc-v2-cbor` (e.g. the Rust CloudWatch SDK): blobs are byte strings, timestamps are
//!   tag 1 wrapping epoch seconds as an integer or a float.
//!
//! In the JSON shapes blobs are base64 strings and timestamps are numbers of epoch seconds, so
//! [`decode`] turns byte strings into base64 and tag 1 into seconds. CBOR output carries no
//! schema of its own, so [`encode`] asks a callback which members are timestamps or blobs.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Number, Value};

/// The unit of the number inside a tag 1 (epoch time) item on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
}

impl TimeUnit {
    /// How many of this unit make one second.
    fn per_second(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Millis => 1000,
        }
    }
}

/// A malformed or unsupported CBOR input.
#[derive(Debug)]
pub struct CborError(pub String);

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid CBOR: {}", self.0)
    }
}

impl std::error::Error for CborError {}

/// How [`encode`] writes a member, as chosen by its callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The natural encoding of the JSON value.
    Plain,
    /// A JSON number of epoch seconds, written as tag 1 in the encoder's [`TimeUnit`].
    Timestamp,
    /// A base64 JSON string, written as a byte string.
    Blob,
}

// Major types (the top three bits of an item's initial byte).
const UNSIGNED: u8 = 0;
const NEGATIVE: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;

/// Additional information 31: indefinite length (major types 2-5) or break (major type 7).
const INDEFINITE: u8 = 31;
/// The "break" stop code ending an indefinite-length item.
const BREAK: u8 = 0xff;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
const DOUBLE: u8 = 0xfb;
/// Tag number of "epoch-based date/time".
const EPOCH_TAG: u64 = 1;
/// Deepest allowed nesting of arrays and maps.
const MAX_DEPTH: usize = 64;
/// 2^63: every f64 in `-TWO_63..TWO_63` converts to i64 exactly when it is whole.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Decodes one CBOR data item (the whole input; trailing bytes are an error).
///
/// Maps become JSON objects (keys must be text strings; duplicate keys: last wins), arrays
/// arrays, text strings strings, byte strings standard padded base64 strings, integers and
/// floats (half, single, double) numbers (negative integers below `i64::MIN`, NaN and infinities
/// are errors), `undefined` becomes null. Tag 1 (epoch time) becomes a number of epoch seconds,
/// the wrapped number being in `unit`; other tags are ignored. Indefinite-length strings, arrays
/// and maps are accepted. Arrays and maps may nest at most 64 deep, and no allocation exceeds
/// what the input length justifies.
pub fn decode(bytes: &[u8], unit: TimeUnit) -> Result<Value, CborError> {
    let mut decoder = Decoder {
        input: bytes,
        pos: 0,
        unit,
    };
    let value = decoder.item(0)?;
    if decoder.pos != bytes.len() {
        return Err(decoder.error("trailing bytes after the data item"));
    }
    Ok(value)
}

/// The initial byte of an item and its argument.
#[derive(Clone, Copy)]
struct Head {
    major: u8,
    /// Additional information: the low five bits of the initial byte.
    info: u8,
    /// The value, length, tag number or float bits that follow (0 when indefinite).
    arg: u64,
}

impl Head {
    fn is_indefinite(self) -> bool {
        self.info == INDEFINITE
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    unit: TimeUnit,
}

impl<'a> Decoder<'a> {
    fn error(&self, msg: impl fmt::Display) -> CborError {
        CborError(format!("{msg} (at byte {})", self.pos))
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Consumes `len` bytes; a length beyond the end of the input is an error.
    fn take(&mut self, len: u64) -> Result<&'a [u8], CborError> {
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => {
                let slice = &self.input[self.pos..self.pos + len];
                self.pos += len;
                Ok(slice)
            }
            _ => Err(self.error(format_args!(
                "unexpected end of input: {len} bytes needed, {} left",
                self.remaining()
            ))),
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// Consumes a break if it comes next, ending an indefinite-length item.
    fn eat_break(&mut self) -> Result<bool, CborError> {
        match self.input.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.error("unexpected end of input in an indefinite-length item")),
        }
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let [initial] = self.take_array()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(u8::from_be_bytes(self.take_array()?)),
            25 => u64::from(u16::from_be_bytes(self.take_array()?)),
            26 => u64::from(u32::from_be_bytes(self.take_array()?)),
            27 => u64::from_be_bytes(self.take_array()?),
            INDEFINITE => 0,
            _ => return Err(self.error(format_args!("reserved additional information {info}"))),
        };
        Ok(Head { major, info, arg })
    }

    /// The argument of a head whose major type has no indefinite form.
    fn definite(&self, head: Head) -> Result<u64, CborError> {
        if head.is_indefinite() {
            return Err(self.error(format_args!(
                "indefinite length is not allowed for major type {}",
                head.major
            )));
        }
        Ok(head.arg)
    }

    /// Decodes one item; `depth` counts the arrays and maps enclosing it.
    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        let mut head = self.head()?;
        // Tags may be stacked. They are unwrapped in a loop rather than by recursion, so a long
        // run of them cannot exhaust the stack; only the innermost one affects the value.
        let mut epoch_time = false;
        while head.major == TAG {
            epoch_time = self.definite(head)? == EPOCH_TAG;
            head = self.head()?;
        }
        let value = match head.major {
            UNSIGNED => Value::from(self.definite(head)?),
            NEGATIVE => {
                // The item's value is -1 - n, which fits in an i64 when n does.
                let n = self.definite(head)?;
                let n =
                    i64::try_from(n).map_err(|_| self.error("negative integer below i64::MIN"))?;
                Value::from(-1 - n)
            }
            BYTES => Value::String(base64_simd::STANDARD.encode_to_string(self.string(head)?)),
            TEXT => Value::String(self.text(head)?),
            ARRAY => self.array(head, depth)?,
            MAP => self.map(head, depth)?,
            // Major type 7 (tags, type 6, were unwrapped above).
            _ => self.simple(head)?,
        };
        if epoch_time {
            self.epoch_seconds(&value)
        } else {
            Ok(value)
        }
    }

    /// Converts the content of a tag 1 item to a JSON number of epoch seconds.
    fn epoch_seconds(&self, value: &Value) -> Result<Value, CborError> {
        let Some(time) = value.as_f64() else {
            return Err(self.error("tag 1 (epoch time) must wrap a number"));
        };
        // `time` is finite (non-finite floats are rejected), and so is the quotient.
        Ok(Value::from(time / self.unit.per_second() as f64))
    }

    /// Reads the content of a byte or text string, joining the chunks of an indefinite one.
    fn string(&mut self, head: Head) -> Result<Cow<'a, [u8]>, CborError> {
        if !head.is_indefinite() {
            return Ok(Cow::Borrowed(self.take(head.arg)?));
        }
        // Definite-length strings of the same major type up to a break; as they are copied from
        // the input, the joined length is bounded by the input length.
        let mut joined = Vec::new();
        while !self.eat_break()? {
            let chunk = self.head()?;
            if chunk.major != head.major || chunk.is_indefinite() {
                return Err(self.error(
                    "a chunk of an indefinite-length string must be a definite-length string of \
                     the same major type",
                ));
            }
            joined.extend_from_slice(self.take(chunk.arg)?);
        }
        Ok(Cow::Owned(joined))
    }

    fn text(&mut self, head: Head) -> Result<String, CborError> {
        // The chunks of an indefinite-length text string are validated together, which also
        // tolerates an encoder that splits a character across chunks.
        let bytes = self.string(head)?;
        String::from_utf8(bytes.into_owned())
            .map_err(|_| self.error("text string is not valid UTF-8"))
    }

    /// Checks a declared number of items against the rest of the input, where each item takes at
    /// least `min_bytes_each` bytes. This rejects impossible lengths before anything is
    /// allocated for them.
    fn count(&self, declared: u64, min_bytes_each: u64) -> Result<usize, CborError> {
        match declared.checked_mul(min_bytes_each) {
            // `declared` <= `needed` <= `remaining`, so it fits in a usize.
            Some(needed) if needed <= self.remaining() as u64 => Ok(declared as usize),
            _ => Err(self.error(format_args!(
                "declared length {declared} exceeds the remaining input"
            ))),
        }
    }

    /// Checks that one more level of arrays or maps may be entered at `depth`.
    fn enter(&self, depth: usize) -> Result<(), CborError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format_args!(
                "arrays and maps nested deeper than {MAX_DEPTH}"
            )));
        }
        Ok(())
    }

    fn array(&mut self, head: Head, depth: usize) -> Result<Value, CborError> {
        self.enter(depth)?;
        let mut items = Vec::new();
        if head.is_indefinite() {
            while !self.eat_break()? {
                items.push(self.item(depth + 1)?);
            }
        } else {
            let len = self.count(head.arg, 1)?;
            items.reserve_exact(len);
            for _ in 0..len {
                items.push(self.item(depth + 1)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, head: Head, depth: usize) -> Result<Value, CborError> {
        self.enter(depth)?;
        let mut map = Map::new();
        if head.is_indefinite() {
            while !self.eat_break()? {
                self.entry(&mut map, depth)?;
            }
        } else {
            // Each entry takes at least two bytes: a key and a value.
            for _ in 0..self.count(head.arg, 2)? {
                self.entry(&mut map, depth)?;
            }
        }
        Ok(Value::Object(map))
    }

    /// Reads one key/value pair of a map at `depth` into `map`; a repeated key replaces the
    /// earlier value.
    fn entry(&mut self, map: &mut Map<String, Value>, depth: usize) -> Result<(), CborError> {
        let head = self.head()?;
        if head.major != TEXT {
            return Err(self.error("map keys must be text strings"));
        }
        let key = self.text(head)?;
        let value = self.item(depth + 1)?;
        map.insert(key, value);
        Ok(())
    }

    /// Decodes a major type 7 item: a simple value or a float.
    fn simple(&self, head: Head) -> Result<Value, CborError> {
        let float = match head.info {
            20 => return Ok(Value::Bool(false)),
            21 => return Ok(Value::Bool(true)),
            // null and undefined
            22 | 23 => return Ok(Value::Null),
            // The argument holds the float's bits, read at the float's width.
            25 => f16_to_f64(head.arg as u16),
            26 => f64::from(f32::from_bits(head.arg as u32)),
            27 => f64::from_bits(head.arg),
            INDEFINITE => return Err(self.error("unexpected break")),
            _ => return Err(self.error(format_args!("unsupported simple value {}", head.arg))),
        };
        Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| self.error("NaN and infinity cannot be represented in JSON"))
    }
}

/// Converts IEEE 754 half-precision bits to an f64 (RFC 8949 Appendix D).
fn f16_to_f64(half: u16) -> f64 {
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24), // subnormal
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mantissa + 1024.0) * 2f64.powi(exponent - 25),
    };
    if half & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Encodes a JSON value as CBOR with definite lengths.
///
/// `kind` is called with the key of each object member (array elements take the kind of the
/// array's key) and says how to write the member:
/// - [`Field::Plain`]: integers in their shortest form, other numbers as doubles, strings as text.
/// - [`Field::Timestamp`]: a number of epoch seconds becomes tag 1 wrapping the time in `unit`:
///   an integer when whole in `unit` (milliseconds are rounded to an integer), else a double.
/// - [`Field::Blob`]: a base64 string becomes a byte string (text if it is not valid base64).
///
/// A value of another JSON type than the kind expects is written plain.
pub fn encode(value: &Value, unit: TimeUnit, kind: &dyn Fn(&str) -> Field) -> Vec<u8> {
    let mut encoder = Encoder {
        out: Vec::new(),
        unit,
        kind,
    };
    encoder.value(value, Field::Plain);
    encoder.out
}

struct Encoder<'k> {
    out: Vec<u8>,
    unit: TimeUnit,
    kind: &'k dyn Fn(&str) -> Field,
}

impl Encoder<'_> {
    fn value(&mut self, value: &Value, field: Field) {
        match value {
            Value::Null => self.out.push(NULL),
            Value::Bool(b) => self.out.push(if *b { TRUE } else { FALSE }),
            Value::Number(n) if field == Field::Timestamp => self.timestamp(n),
            Value::Number(n) => self.number(n),
            Value::String(s) if field == Field::Blob => self.blob(s),
            Value::String(s) => self.text(s),
            Value::Array(items) => {
                self.head(ARRAY, items.len() as u64);
                for item in items {
                    self.value(item, field);
                }
            }
            Value::Object(members) => {
                self.head(MAP, members.len() as u64);
                for (key, member) in members {
                    self.text(key);
                    let field = (self.kind)(key);
                    self.value(member, field);
                }
            }
        }
    }

    /// Writes a head in its shortest form.
    fn head(&mut self, major: u8, arg: u64) {
        let major = major << 5;
        if arg < 24 {
            self.out.push(major | arg as u8);
        } else if let Ok(arg) = u8::try_from(arg) {
            self.out.extend_from_slice(&[major | 24, arg]);
        } else if let Ok(arg) = u16::try_from(arg) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&arg.to_be_bytes());
        } else if let Ok(arg) = u32::try_from(arg) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&arg.to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    fn int(&mut self, i: i64) {
        match u64::try_from(i) {
            Ok(u) => self.head(UNSIGNED, u),
            // A negative integer is encoded as -1 - i, which for negative i is !i as u64.
            Err(_) => self.head(NEGATIVE, !(i as u64)),
        }
    }

    fn double(&mut self, f: f64) {
        self.out.push(DOUBLE);
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    fn number(&mut self, n: &Number) {
        if let Some(u) = n.as_u64() {
            self.head(UNSIGNED, u);
        } else if let Some(i) = n.as_i64() {
            self.int(i);
        } else if let Some(f) = n.as_f64() {
            self.double(f);
        } else {
            // Only reachable with serde_json's `arbitrary_precision`, for numbers beyond f64.
            self.out.push(NULL);
        }
    }

    fn timestamp(&mut self, seconds: &Number) {
        let per_second = self.unit.per_second();
        // Integral seconds scale exactly unless that overflows.
        if let Some(time) = seconds.as_i64().and_then(|s| s.checked_mul(per_second)) {
            self.head(TAG, EPOCH_TAG);
            self.int(time);
            return;
        }
        let Some(seconds) = seconds.as_f64() else {
            // Only reachable with serde_json's `arbitrary_precision`, for numbers beyond f64.
            self.out.push(NULL);
            return;
        };
        let time = match self.unit {
            TimeUnit::Seconds => seconds,
            TimeUnit::Millis => (seconds * 1000.0).round(),
        };
        self.head(TAG, EPOCH_TAG);
        if time.fract() == 0.0 && (-TWO_63..TWO_63).contains(&time) {
            self.int(time as i64);
        } else {
            self.double(time);
        }
    }

    fn text(&mut self, s: &str) {
        self.head(TEXT, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn blob(&mut self, base64: &str) {
        match base64_simd::STANDARD.decode_to_vec(base64) {
            Ok(bytes) => {
                self.head(BYTES, bytes.len() as u64);
                self.out.extend_from_slice(&bytes);
            }
            Err(_) => self.text(base64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;
    use serde_json::json;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd-length hex {s}");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn dec(h: &str) -> Value {
        decode(&hex(h), TimeUnit::Seconds).unwrap_or_else(|e| panic!("{h}: {e}"))
    }

    fn dec_err(bytes: &[u8]) -> String {
        match decode(bytes, TimeUnit::Seconds) {
            Ok(v) => panic!("{bytes:02x?} decoded to {v}"),
            Err(e) => e.to_string(),
        }
    }

    fn plain(_: &str) -> Field {
        Field::Plain
    }

    fn enc(value: &Value) -> Vec<u8> {
        encode(value, TimeUnit::Seconds, &plain)
    }

    /// The decoded value is a float with exactly these bits (so -0.0 differs from 0.0).
    fn assert_float(h: &str, expected: f64) {
        let v = dec(h);
        let got = v
            .as_f64()
            .unwrap_or_else(|| panic!("{h}: {v} is not a number"));
        assert!(v.is_f64(), "{h}: {v} is not a float");
        assert_eq!(
            got.to_bits(),
            expected.to_bits(),
            "{h}: {got} != {expected}"
        );
    }

    #[test]
    fn rfc_integers() {
        let cases: &[(&str, Value)] = &[
            ("00", json!(0)),
            ("01", json!(1)),
            ("0a", json!(10)),
            ("17", json!(23)),
            ("1818", json!(24)),
            ("1819", json!(25)),
            ("1864", json!(100)),
            ("1903e8", json!(1000)),
            ("1a000f4240", json!(1_000_000)),
            ("1b000000e8d4a51000", json!(1_000_000_000_000u64)),
            ("1bffffffffffffffff", json!(u64::MAX)),
            ("20", json!(-1)),
            ("29", json!(-10)),
            ("3863", json!(-100)),
            ("3903e7", json!(-1000)),
            ("3b7fffffffffffffff", json!(i64::MIN)),
        ];
        for (h, expected) in cases {
            assert_eq!(&dec(h), expected, "{h}");
        }
        // -18446744073709551616 (RFC 8949 Appendix A) is below i64::MIN.
        assert!(dec_err(&hex("3bffffffffffffffff")).contains("i64::MIN"));
        assert!(dec_err(&hex("3b8000000000000000")).contains("i64::MIN"));
        // Bignum tags wrap byte strings, which decode as base64 (other tags are ignored).
        assert_eq!(dec("c249010000000000000000"), json!("AQAAAAAAAAAA"));
    }

    #[test]
    fn rfc_floats() {
        let cases: &[(&str, f64)] = &[
            ("f90000", 0.0),
            ("f98000", -0.0),
            ("f93c00", 1.0),
            ("fb3ff199999999999a", 1.1),
            ("f93e00", 1.5),
            ("f97bff", 65504.0),
            ("fa47c35000", 100000.0),
            ("fa7f7fffff", 3.4028234663852886e38),
            ("fb7e37e43c8800759c", 1.0e300),
            ("f90001", 5.960464477539063e-8),
            ("f90400", 0.00006103515625),
            ("f9c400", -4.0),
            ("fbc010666666666666", -4.1),
        ];
        for &(h, expected) in cases {
            assert_float(h, expected);
        }
        for h in [
            "f97c00",
            "f97e00",
            "f9fc00",
            "fa7f800000",
            "fa7fc00000",
            "faff800000",
            "fb7ff0000000000000",
            "fb7ff8000000000000",
            "fbfff0000000000000",
        ] {
            assert!(dec_err(&hex(h)).contains("NaN"), "{h}");
        }
    }

    #[test]
    fn rfc_simple_values() {
        assert_eq!(dec("f4"), json!(false));
        assert_eq!(dec("f5"), json!(true));
        assert_eq!(dec("f6"), Value::Null);
        assert_eq!(dec("f7"), Value::Null); // undefined
        for h in ["f0", "f8ff", "f818"] {
            assert!(dec_err(&hex(h)).contains("simple value"), "{h}");
        }
    }

    #[test]
    fn rfc_tags() {
        assert_eq!(
            dec("c074323031332d30332d32315432303a30343a30305a"),
            json!("2013-03-21T20:04:00Z")
        );
        assert_eq!(dec("c11a514b67b0"), json!(1363896240.0));
        assert_eq!(dec("c1fb41d452d9ec200000"), json!(1363896240.5));
        assert_eq!(dec("d74401020304"), json!("AQIDBA=="));
        assert_eq!(dec("d818456449455446"), json!("ZElFVEY="));
        assert_eq!(
            dec("d82076687474703a2f2f7777772e6578616d706c652e636f6d"),
            json!("http://www.example.com")
        );
    }

    #[test]
    fn rfc_strings() {
        assert_eq!(dec("40"), json!(""));
        assert_eq!(dec("4401020304"), json!("AQIDBA=="));
        assert_eq!(dec("60"), json!(""));
        assert_eq!(dec("6161"), json!("a"));
        assert_eq!(dec("6449455446"), json!("IETF"));
        assert_eq!(dec("62225c"), json!("\"\\"));
        assert_eq!(dec("62c3bc"), json!("\u{00fc}"));
        assert_eq!(dec("63e6b0b4"), json!("\u{6c34}"));
        assert_eq!(dec("64f0908591"), json!("\u{10151}"));
    }

    #[test]
    fn rfc_arrays_and_maps() {
        let one_to_25 = json!((1..=25).collect::<Vec<_>>());
        assert_eq!(dec("80"), json!([]));
        assert_eq!(dec("83010203"), json!([1, 2, 3]));
        assert_eq!(dec("8301820203820405"), json!([1, [2, 3], [4, 5]]));
        assert_eq!(
            dec("98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
            one_to_25
        );
        assert_eq!(dec("a0"), json!({}));
        assert_eq!(dec("a26161016162820203"), json!({"a": 1, "b": [2, 3]}));
        assert_eq!(dec("826161a161626163"), json!(["a", {"b": "c"}]));
        assert_eq!(
            dec("a56161614161626142616361436164614461656145"),
            json!({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"})
        );
    }

    #[test]
    fn rfc_indefinite_lengths() {
        assert_eq!(dec("5f42010243030405ff"), json!("AQIDBAU="));
        assert_eq!(dec("5fff"), json!(""));
        assert_eq!(dec("7f657374726561646d696e67ff"), json!("streaming"));
        assert_eq!(dec("7fff"), json!(""));
        assert_eq!(dec("9fff"), json!([]));
        let nested = json!([1, [2, 3], [4, 5]]);
        for h in [
            "9f018202039f0405ffff",
            "9f01820203820405ff",
            "83018202039f0405ff",
            "83019f0203ff820405",
        ] {
            assert_eq!(dec(h), nested, "{h}");
        }
        assert_eq!(
            dec("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff"),
            json!((1..=25).collect::<Vec<_>>())
        );
        assert_eq!(dec("bf61610161629f0203ffff"), json!({"a": 1, "b": [2, 3]}));
        assert_eq!(dec("826161bf61626163ff"), json!(["a", {"b": "c"}]));
        assert_eq!(
            dec("bf6346756ef563416d7421ff"),
            json!({"Fun": true, "Amt": -2})
        );
        // An indefinite-length text key.
        assert_eq!(dec("bf7f6141ff01ff"), json!({"A": 1}));
        // A character split across the chunks of an indefinite-length text string.
        assert_eq!(dec("7f61c361bcff"), json!("\u{00fc}"));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(dec("a2616101616102"), json!({"a": 2}));
    }

    #[test]
    fn epoch_time_in_both_units() {
        let mut millis = vec![0xc1, 0x1b];
        millis.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        assert_eq!(
            decode(&millis, TimeUnit::Millis).unwrap(),
            json!(1_700_000_000.123)
        );
        assert_eq!(
            decode(&millis, TimeUnit::Seconds).unwrap(),
            json!(1_700_000_000_123.0)
        );
        // Seconds as integer, double, single and half precision.
        let seconds = TimeUnit::Seconds;
        assert_eq!(
            decode(&hex("c11a6553f100"), seconds).unwrap(),
            json!(1_700_000_000.0)
        );
        let mut double = vec![0xc1, 0xfb];
        double.extend_from_slice(&1_700_000_000.123f64.to_be_bytes());
        assert_eq!(decode(&double, seconds).unwrap(), json!(1_700_000_000.123));
        assert_eq!(
            decode(&hex("c1fa4f5a0000"), seconds).unwrap(),
            json!(3_657_433_088.0)
        );
        assert_eq!(decode(&hex("c1f93e00"), seconds).unwrap(), json!(1.5));
        // Negative times (before 1970).
        assert_eq!(
            decode(&hex("c13903e7"), TimeUnit::Millis).unwrap(),
            json!(-1.0)
        );
        // Inside a structure, and beneath another tag.
        assert_eq!(
            decode(&hex("a16174d7c11903e8"), TimeUnit::Millis).unwrap(),
            json!({"t": 1.0})
        );
        assert!(dec_err(&hex("c16161")).contains("tag 1"));
        assert!(dec_err(&hex("c180")).contains("tag 1"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[(&str, &str)] = &[
            ("", "end of input"),
            ("18", "end of input"),
            ("1903", "end of input"),
            ("1b00000000", "end of input"),
            ("6261", "end of input"),
            ("4401", "end of input"),
            ("821903e8", "end of input"),
            ("a16161", "end of input"),
            ("5f4100", "end of input"),
            ("9f01", "end of input"),
            ("bf6161", "end of input"),
            ("c1", "end of input"),
            ("fb3ff0", "end of input"),
            ("0000", "trailing"),
            ("8001", "trailing"),
            ("ff", "break"),
            ("81ff", "break"),
            ("1c", "reserved"),
            ("5e", "reserved"),
            ("1f", "indefinite"),
            ("3f", "indefinite"),
            ("df00", "indefinite"),
            ("5f6161ff", "chunk"),
            ("5f5f40ffff", "chunk"),
            ("7f4161ff", "chunk"),
            ("5f00ff", "chunk"),
            ("a10102", "map keys"),
            ("a1400102", "map keys"),
            ("a1c1616101", "map keys"),
            ("bf0102ff", "map keys"),
            ("62c328", "UTF-8"),
            ("61ff", "UTF-8"),
            ("7f61c3ff", "UTF-8"),
            ("a162c3280a", "UTF-8"),
        ];
        for &(h, expected) in cases {
            let msg = dec_err(&hex(h));
            assert!(msg.contains(expected), "{h}: {msg:?} lacks {expected:?}");
        }
    }

    #[test]
    fn huge_declared_lengths_are_errors() {
        for h in [
            "5bffffffffffffffff",
            "7bffffffffffffffff",
            "9bffffffffffffffff",
            "bbffffffffffffffff",
            "5a7fffffff00",
            "7a7fffffff00",
            "9a7fffffff00",
            "ba7fffffff00",
            "5b00000000000000030000",
            "9b000000000000000500000000",
            // Two map entries need at least four bytes.
            "a2000000",
            "5f5bffffffffffffffffff",
        ] {
            let msg = dec_err(&hex(h));
            assert!(
                msg.contains("exceeds") || msg.contains("end of input"),
                "{h}: {msg}"
            );
        }
    }

    #[test]
    fn nesting_depth_is_limited() {
        let nested = |depth: usize, open: u8| {
            let mut bytes = vec![open; depth];
            bytes.push(0x00);
            if open == 0x9f {
                bytes.extend(std::iter::repeat_n(BREAK, depth));
            }
            bytes
        };
        for open in [0x81, 0x9f] {
            assert!(decode(&nested(MAX_DEPTH, open), TimeUnit::Seconds).is_ok());
            assert!(dec_err(&nested(MAX_DEPTH + 1, open)).contains("nested"));
            assert!(dec_err(&nested(100_000, open)).contains("nested"));
        }
        // Maps count too.
        let mut maps = [0xa1, 0x61, 0x6b].repeat(MAX_DEPTH + 1);
        maps.push(0x00);
        assert!(dec_err(&maps).contains("nested"));
        assert!(decode(&maps[3..], TimeUnit::Seconds).is_ok());
        // Tags are unwrapped without recursion, so a long run of them is harmless.
        let mut tags = vec![0xc2; 100_000];
        tags.push(0x00);
        assert_eq!(decode(&tags, TimeUnit::Seconds).unwrap(), json!(0));
    }

    #[test]
    fn encodes_shortest_integers_and_doubles() {
        let cases: &[(Value, &str)] = &[
            (json!(0), "00"),
            (json!(23), "17"),
            (json!(24), "1818"),
            (json!(255), "18ff"),
            (json!(256), "190100"),
            (json!(65535), "19ffff"),
            (json!(65536), "1a00010000"),
            (json!(4_294_967_295u64), "1affffffff"),
            (json!(4_294_967_296u64), "1b0000000100000000"),
            (json!(u64::MAX), "1bffffffffffffffff"),
            (json!(-1), "20"),
            (json!(-24), "37"),
            (json!(-25), "3818"),
            (json!(-1000), "3903e7"),
            (json!(i64::MIN), "3b7fffffffffffffff"),
            (json!(1.5), "fb3ff8000000000000"),
            (json!(1.0), "fb3ff0000000000000"),
            (json!(-4.1), "fbc010666666666666"),
            (json!(null), "f6"),
            (json!(true), "f5"),
            (json!(false), "f4"),
            (json!(""), "60"),
            (json!("IETF"), "6449455446"),
            (json!("\u{6c34}"), "63e6b0b4"),
            (json!([1, [2, 3], [4, 5]]), "8301820203820405"),
            (json!({"a": 1, "b": [2, 3]}), "a26161016162820203"),
            (json!(["a", {"b": "c"}]), "826161a161626163"),
        ];
        for (value, h) in cases {
            assert_eq!(enc(value), hex(h), "{value}");
        }
        let long = json!("x".repeat(300));
        assert_eq!(enc(&long)[..3], hex("79012c")[..]);
    }

    #[test]
    fn encodes_timestamps() {
        let kind = |key: &str| match key {
            "ts" => Field::Timestamp,
            _ => Field::Plain,
        };
        let seconds = |v: Value| encode(&v, TimeUnit::Seconds, &kind);
        let millis = |v: Value| encode(&v, TimeUnit::Millis, &kind);
        // {"ts": ...}
        let ts = |h: &str| hex(&format!("a1627473{h}"));

        // Whole seconds, from an integer or a float, become integers; others doubles.
        assert_eq!(seconds(json!({"ts": 1363896240})), ts("c11a514b67b0"));
        assert_eq!(seconds(json!({"ts": 1363896240.0})), ts("c11a514b67b0"));
        assert_eq!(
            seconds(json!({"ts": 1363896240.5})),
            ts("c1fb41d452d9ec200000")
        );
        assert_eq!(seconds(json!({"ts": -1})), ts("c120"));
        assert_eq!(seconds(json!({"ts": 1e300})), ts("c1fb7e37e43c8800759c"));
        // Milliseconds are rounded to integers.
        assert_eq!(millis(json!({"ts": 5})), ts("c1191388"));
        assert_eq!(millis(json!({"ts": -1.5})), ts("c13905db"));
        assert_eq!(millis(json!({"ts": 0.0004})), ts("c100"));
        let mut expected = ts("c11b");
        expected.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
        assert_eq!(millis(json!({"ts": 1_700_000_000.123})), expected);
        // Integral seconds whose milliseconds overflow an i64 fall back to a double.
        assert_eq!(millis(json!({"ts": i64::MAX}))[..6], ts("c1fb")[..]);
        // Array elements take the kind of the array's key; object members their own.
        assert_eq!(
            seconds(json!({"ts": [1, 2.5]})),
            ts("82c101c1fb4004000000000000")
        );
        assert_eq!(
            seconds(json!({"ts": [{"n": 1, "ts": 2}]})),
            ts("81a2616e01627473c102")
        );
        // Other keys, and values that are not numbers, are written plain.
        assert_eq!(seconds(json!({"n": 1})), hex("a1616e01"));
        assert_eq!(seconds(json!({"ts": "soon"})), ts("64736f6f6e"));
        assert_eq!(seconds(json!({"ts": null})), ts("f6"));

        // And back again.
        let value = json!({"ts": 1_700_000_000.123, "n": 7, "list": [{"ts": -0.5}]});
        for unit in [TimeUnit::Seconds, TimeUnit::Millis] {
            let bytes = encode(&value, unit, &kind);
            assert_eq!(decode(&bytes, unit).unwrap(), value, "{unit:?}");
        }
    }

    #[test]
    fn encodes_blobs() {
        let kind = |key: &str| match key {
            "Data" => Field::Blob,
            _ => Field::Plain,
        };
        let blob = |v: &Value| encode(v, TimeUnit::Millis, &kind);
        // {"Data": ...}
        let data = |h: &str| hex(&format!("a16444617461{h}"));

        assert_eq!(blob(&json!({"Data": "AQIDBA=="})), data("4401020304"));
        assert_eq!(blob(&json!({"Data": ""})), data("40"));
        assert_eq!(blob(&json!({"Data": ["AQ==", "Ag=="]})), data("8241014102"));
        assert_eq!(blob(&json!({"Data": 5})), data("05"));
        // Not base64: written as text.
        let not_base64 = json!({"Data": "not base64!"});
        assert_eq!(blob(&not_base64), enc(&not_base64));
        // A Kinesis-like request round trips, with its blob as a byte string.
        let request = json!({
            "Records": [{"Data": "AQIDBA==", "PartitionKey": "k"}, {"Data": "", "PartitionKey": "l"}],
            "StreamName": "s",
        });
        let bytes = blob(&request);
        assert!(bytes.windows(5).any(|w| w == hex("4401020304")));
        assert_eq!(decode(&bytes, TimeUnit::Millis).unwrap(), request);
    }

    /// Strings of arbitrary characters (no regex strategies needed).
    fn text() -> impl Strategy<Value = String> {
        vec(any::<char>(), 0..12).prop_map(String::from_iter)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        use proptest::num::f64::{NORMAL, SUBNORMAL, ZERO};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (NORMAL | SUBNORMAL | ZERO).prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                btree_map(text(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips_json(value in json_value()) {
            let bytes = enc(&value);
            prop_assert_eq!(decode(&bytes, TimeUnit::Seconds).unwrap(), value);
        }

        #[test]
        fn arbitrary_bytes_do_not_panic(bytes in vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, TimeUnit::Millis);
        }

        #[test]
        fn truncated_encodings_are_errors(value in json_value(), cut in any::<prop::sample::Index>()) {
            let bytes = enc(&value);
            let cut = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..cut], TimeUnit::Seconds).is_err());
        }

        #[test]
        fn millisecond_timestamps_round_trip(ms in -10_000_000_000_000i64..10_000_000_000_000) {
            let value = json!({"t": ms as f64 / 1000.0});
            let bytes = encode(&value, TimeUnit::Millis, &|_| Field::Timestamp);
            prop_assert_eq!(decode(&bytes, TimeUnit::Millis).unwrap(), value);
        }

        #[test]
        fn second_timestamps_round_trip(seconds in proptest::num::f64::NORMAL | proptest::num::f64::ZERO) {
            let value = json!({"t": seconds});
            let bytes = encode(&value, TimeUnit::Seconds, &|_| Field::Timestamp);
            prop_assert_eq!(decode(&bytes, TimeUnit::Seconds).unwrap(), value);
        }
    }
}
