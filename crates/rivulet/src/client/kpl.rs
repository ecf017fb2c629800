//! The KPL aggregated record format (awslabs/amazon-kinesis-producer, `aggregation-format.md`):
//! the 4 magic bytes `F3 89 9A C2`, a protobuf (proto2) `AggregatedRecord` message, then the
//! 16-byte MD5 of the protobuf bytes alone.
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! The protobuf encoding is written by hand: varints and length-delimited fields out, and on
//! the way in, unknown fields of every wire type (groups included) skipped.

use std::collections::HashMap;

use md5::{Digest, Md5};

/// The first four bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// The MD5 digest at the end.
const DIGEST_LEN: usize = 16;

/// `deaggregate` gives up (the data is then a plain record) beyond this many user records.
pub const MAX_RECORDS: usize = 1_000_000;

/// … or when the user records' keys and data would take more than this many bytes in all.
/// Deduplicated keys make the user records legitimately larger than the aggregated record, but
/// a long key referenced by many tiny records must not turn a small input into gigabytes.
pub const MAX_EXPANDED_BYTES: u64 = 256 << 20;

/// Groups nested deeper than this in an unknown field are rejected.
const MAX_GROUP_DEPTH: u32 = 64;

// Field keys (field number << 3 | wire type) the encoder writes; all fit in one byte.
const KEY_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2;
const KEY_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | 2;
const KEY_RECORDS: u8 = (3 << 3) | 2;
const KEY_PARTITION_KEY_INDEX: u8 = 1 << 3;
const KEY_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const KEY_DATA: u8 = (3 << 3) | 2;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

/// One record as the producer put it: what an aggregated record carries many of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// An aggregator that packs user records into one Kinesis record, deduplicating keys.
///
/// The three parts of the protobuf message are kept already encoded, so the size of the
/// aggregated record is always known exactly and `finish` only concatenates.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// Encoded `partition_key_table` entries (field 1), in index order.
    partition_keys: Vec<u8>,
    partition_key_index: HashMap<String, u64>,
    /// Encoded `explicit_hash_key_table` entries (field 2), in index order.
    explicit_hash_keys: Vec<u8>,
    explicit_hash_key_index: HashMap<String, u64>,
    /// Encoded `records` entries (field 3).
    records: Vec<u8>,
    count: usize,
    /// The first user record's keys: the aggregated record is put with them.
    first: Option<(String, Option<String>)>,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the aggregated record would take if `r` were added (magic + protobuf + md5).
    pub fn size_with(&self, r: &UserRecord) -> usize {
        let (pk_index, pk_bytes) = slot(&self.partition_key_index, &r.partition_key);
        let (ehk_index, ehk_bytes) = match &r.explicit_hash_key {
            Some(k) => {
                let (i, n) = slot(&self.explicit_hash_key_index, k);
                (Some(i), n)
            }
            None => (None, 0),
        };
        let mut body = self.body_len() + pk_bytes + ehk_bytes;
        body += len_field_size(record_size(pk_index, ehk_index, r.data.len()));
        MAGIC.len() + body + DIGEST_LEN
    }

    pub fn push(&mut self, r: UserRecord) {
        if self.first.is_none() {
            self.first = Some((r.partition_key.clone(), r.explicit_hash_key.clone()));
        }
        let pk_index = intern(
            &mut self.partition_key_index,
            &mut self.partition_keys,
            KEY_PARTITION_KEY_TABLE,
            r.partition_key,
        );
        let ehk_index = r.explicit_hash_key.map(|k| {
            intern(
                &mut self.explicit_hash_key_index,
                &mut self.explicit_hash_keys,
                KEY_EXPLICIT_HASH_KEY_TABLE,
                k,
            )
        });
        let out = &mut self.records;
        out.push(KEY_RECORDS);
        put_varint(out, record_size(pk_index, ehk_index, r.data.len()) as u64);
        out.push(KEY_PARTITION_KEY_INDEX);
        put_varint(out, pk_index);
        if let Some(i) = ehk_index {
            out.push(KEY_EXPLICIT_HASH_KEY_INDEX);
            put_varint(out, i);
        }
        out.push(KEY_DATA);
        put_varint(out, r.data.len() as u64);
        out.extend_from_slice(&r.data);
        self.count += 1;
    }

    /// User records added since the last `finish`.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The aggregated record's bytes, and the partition key (and explicit hash key) to put it
    /// with: the first user record's keys, as the KPL does. Resets the aggregator. `None` when
    /// nothing was added. (The KPL sends a lone user record as a plain record instead; a caller
    /// wanting that checks `len() == 1` before adding a second.)
    pub fn finish(&mut self) -> Option<(Vec<u8>, String, Option<String>)> {
        if self.count == 0 {
            return None;
        }
        let capacity = MAGIC.len() + self.body_len() + DIGEST_LEN;
        let taken = std::mem::take(self);
        let (partition_key, explicit_hash_key) = taken.first?;
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&taken.partition_keys);
        out.extend_from_slice(&taken.explicit_hash_keys);
        out.extend_from_slice(&taken.records);
        let digest = Md5::digest(&out[MAGIC.len()..]);
        out.extend_from_slice(&digest);
        Some((out, partition_key, explicit_hash_key))
    }

    /// Bytes of the protobuf message so far.
    fn body_len(&self) -> usize {
        self.partition_keys.len() + self.explicit_hash_keys.len() + self.records.len()
    }
}

/// The index `key` has or would get in a key table, and the bytes adding it would take.
fn slot(index: &HashMap<String, u64>, key: &str) -> (u64, usize) {
    match index.get(key) {
        Some(&i) => (i, 0),
        None => (index.len() as u64, len_field_size(key.len())),
    }
}

/// The index of `key` in a key table, adding it (encoded under `field_key`) if new.
fn intern(
    index: &mut HashMap<String, u64>,
    table: &mut Vec<u8>,
    field_key: u8,
    key: String,
) -> u64 {
    if let Some(&i) = index.get(&key) {
        return i;
    }
    let i = index.len() as u64;
    table.push(field_key);
    put_varint(table, key.len() as u64);
    table.extend_from_slice(key.as_bytes());
    index.insert(key, i);
    i
}

/// Bytes of an encoded `Record` message (without its own key and length).
fn record_size(pk_index: u64, ehk_index: Option<u64>, data_len: usize) -> usize {
    1 + varint_size(pk_index)
        + ehk_index.map_or(0, |i| 1 + varint_size(i))
        + len_field_size(data_len)
}

/// Bytes of a length-delimited field with a one-byte key and `len` bytes of content.
fn len_field_size(len: usize) -> usize {
    1 + varint_size(len as u64) + len
}

fn varint_size(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7F) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// De-aggregates: Some(user records) when `data` starts with the magic, parses, and its MD5
/// matches; None otherwise (then it is a plain record). Indexes out of range → None.
///
/// Limits: at most `MAX_RECORDS` user records and `MAX_EXPANDED_BYTES` of keys and data in
/// all. Nothing is allocated from a length or count the input claims: every length is checked
/// against the bytes actually left before anything is sliced, and lists grow as entries are
/// actually read.
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    let parsed = parse_aggregated(body)?;
    // Protobuf fields may come in any order: indexes are checked once all tables are read.
    let mut expanded: u64 = 0;
    for r in &parsed.records {
        let pk = parsed
            .partition_keys
            .get(usize::try_from(r.pk_index).ok()?)?;
        let ehk_len = match r.ehk_index {
            Some(i) => parsed
                .explicit_hash_keys
                .get(usize::try_from(i).ok()?)?
                .len(),
            None => 0,
        };
        expanded += (pk.len() + ehk_len + r.data.len()) as u64;
        if expanded > MAX_EXPANDED_BYTES {
            return None;
        }
    }
    let partition_keys: Vec<String> = parsed.partition_keys.iter().map(|k| text(k)).collect();
    let explicit_hash_keys: Vec<String> =
        parsed.explicit_hash_keys.iter().map(|k| text(k)).collect();
    let records = parsed
        .records
        .iter()
        .map(|r| UserRecord {
            // In range: checked above.
            partition_key: partition_keys[r.pk_index as usize].clone(),
            explicit_hash_key: r.ehk_index.map(|i| explicit_hash_keys[i as usize].clone()),
            data: r.data.to_vec(),
        })
        .collect();
    Some(records)
}

/// A proto2 `string`: invalid UTF-8 is replaced, as the Java protobuf runtime (and so the KCL)
/// does, rather than failing the whole aggregated record.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Parsed<'a> {
    partition_keys: Vec<&'a [u8]>,
    explicit_hash_keys: Vec<&'a [u8]>,
    records: Vec<RawRecord<'a>>,
}

struct RawRecord<'a> {
    pk_index: u64,
    ehk_index: Option<u64>,
    data: &'a [u8],
}

fn parse_aggregated(body: &[u8]) -> Option<Parsed<'_>> {
    let mut p = Parsed {
        partition_keys: Vec::new(),
        explicit_hash_keys: Vec::new(),
        records: Vec::new(),
    };
    let mut r = Reader::new(body);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => p.partition_keys.push(r.len_delimited()?),
            (2, WIRE_LEN) => p.explicit_hash_keys.push(r.len_delimited()?),
            (3, WIRE_LEN) => {
                if p.records.len() >= MAX_RECORDS {
                    return None;
                }
                p.records.push(parse_record(r.len_delimited()?)?);
            }
            // Unknown fields, and known ones with another wire type (as protobuf runtimes do).
            _ => r.skip(field, wire, 0)?,
        }
    }
    Some(p)
}

fn parse_record(buf: &[u8]) -> Option<RawRecord<'_>> {
    let mut pk_index = None;
    let mut ehk_index = None;
    let mut data = None;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            // For a singular field seen twice, the last one wins.
            (1, WIRE_VARINT) => pk_index = Some(r.varint()?),
            (2, WIRE_VARINT) => ehk_index = Some(r.varint()?),
            (3, WIRE_LEN) => data = Some(r.len_delimited()?),
            (4, WIRE_LEN) => check_tag(r.len_delimited()?)?,
            _ => r.skip(field, wire, 0)?,
        }
    }
    // Both are `required`.
    Some(RawRecord {
        pk_index: pk_index?,
        ehk_index,
        data: data?,
    })
}

/// Tags are not returned, but a malformed one (no `key`) fails the parse as in the KCL.
fn check_tag(buf: &[u8]) -> Option<()> {
    let mut has_key = false;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, WIRE_LEN) => {
                r.len_delimited()?;
                has_key = true;
            }
            _ => r.skip(field, wire, 0)?,
        }
    }
    has_key.then_some(())
}

/// A cursor over protobuf bytes; every read is bounds-checked and fails with `None`.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// A base-128 varint of at most 10 bytes that fits in 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Option<(u32, u8)> {
        let k = self.varint()?;
        let field = u32::try_from(k >> 3).ok()?;
        if field == 0 || field > (1 << 29) - 1 {
            return None;
        }
        Some((field, (k & 7) as u8))
    }

    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    /// Skips the value of a field whose key was just read.
    fn skip(&mut self, field: u32, wire: u8, depth: u32) -> Option<()> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            WIRE_START_GROUP => {
                if depth >= MAX_GROUP_DEPTH {
                    return None;
                }
                loop {
                    let (f, w) = self.key()?;
                    if w == WIRE_END_GROUP {
                        return (f == field).then_some(());
                    }
                    self.skip(f, w, depth + 1)?;
                }
            }
            // An end-group without its start, or wire types 6 and 7.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(pk: &str, ehk: Option<&str>, data: &[u8]) -> UserRecord {
        UserRecord {
            partition_key: pk.into(),
            explicit_hash_key: ehk.map(Into::into),
            data: data.to_vec(),
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Magic + `body` + MD5(body): an aggregated record around arbitrary protobuf bytes.
    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&Md5::digest(body));
        out
    }

    #[test]
    fn one_record_encodes_byte_for_byte() {
        let mut a = Aggregator::new();
        let r = rec("a", None, b"hi");
        let predicted = a.size_with(&r);
        a.push(r.clone());
        assert_eq!(a.len(), 1);
        let (bytes, pk, ehk) = a.finish().unwrap();
        assert_eq!((pk.as_str(), ehk), ("a", None));
        let expected = [
            // magic
            0xF3, 0x89, 0x9A, 0xC2, //
            // partition_key_table[0] = "a": field 1, length-delimited, 1 byte
            0x0A, 0x01, b'a', //
            // records[0]: field 3, length-delimited, 6 bytes
            0x1A, 0x06, //
            // partition_key_index = 0: field 1, varint
            0x08, 0x00, //
            // data = "hi": field 3, length-delimited, 2 bytes
            0x1A, 0x02, b'h', b'i',
        ];
        assert_eq!(&bytes[..expected.len()], &expected);
        // MD5 of the 11 protobuf bytes, computed independently (md5sum).
        assert_eq!(
            &bytes[expected.len()..],
            hex("ed4ff28777966ae6df59911cb0530cc2")
        );
        assert_eq!(bytes.len(), expected.len() + 16);
        assert_eq!(predicted, bytes.len());
        assert_eq!(deaggregate(&bytes), Some(vec![r]));
        // The aggregator was reset.
        assert!(a.is_empty());
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn explicit_hash_key_encodes_byte_for_byte() {
        let mut a = Aggregator::new();
        a.push(rec("a", Some("1"), b""));
        let (bytes, pk, ehk) = a.finish().unwrap();
        assert_eq!((pk.as_str(), ehk.as_deref()), ("a", Some("1")));
        // partition_key_table "a", explicit_hash_key_table "1" (field 2), then the record:
        // partition_key_index 0, explicit_hash_key_index 0 (field 2, varint), empty data.
        assert_eq!(
            bytes,
            wrap(&hex(concat!("0a0161", "120131", "1a06080010001a00")))
        );
    }

    #[test]
    fn keys_are_deduplicated_and_the_first_records_keys_returned() {
        let mut a = Aggregator::new();
        let records = vec![
            rec(
                "k1",
                Some("170141183460469231731687303715884105728"),
                b"one",
            ),
            rec("k2", None, b""),
            rec("k1", None, b"three"),
            rec(
                "k2",
                Some("170141183460469231731687303715884105728"),
                b"four",
            ),
        ];
        for r in &records {
            a.push(r.clone());
        }
        let (bytes, pk, ehk) = a.finish().unwrap();
        assert_eq!(pk, "k1");
        assert_eq!(
            ehk.as_deref(),
            Some("170141183460469231731687303715884105728")
        );
        // Each key appears once in the tables.
        let hits = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
        assert_eq!(hits(b"k1"), 1);
        assert_eq!(hits(b"k2"), 1);
        assert_eq!(hits(b"1701411834604692317316873037"), 1);
        assert_eq!(deaggregate(&bytes), Some(records));
    }

    #[test]
    fn bad_md5_is_a_plain_record() {
        let mut a = Aggregator::new();
        a.push(rec("a", None, b"hi"));
        let (mut bytes, _, _) = a.finish().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(deaggregate(&bytes), None);
        // A changed body no longer matches the digest either.
        bytes[last] ^= 1;
        bytes[6] = b'b';
        assert_eq!(deaggregate(&bytes), None);
    }

    #[test]
    fn truncated_is_a_plain_record() {
        let mut a = Aggregator::new();
        a.push(rec("a", None, b"hi"));
        a.push(rec("b", Some("5"), b"there"));
        let (bytes, _, _) = a.finish().unwrap();
        for n in 0..bytes.len() {
            assert_eq!(deaggregate(&bytes[..n]), None, "{n} bytes");
        }
        // Truncated protobuf with a digest that matches it: still not a parse.
        for n in 0..bytes.len() - 20 {
            let body = &bytes[4..4 + n];
            let parsed = deaggregate(&wrap(body));
            assert!(parsed.is_none() || parsed.as_ref().is_some_and(|v| v.len() < 2));
        }
    }

    #[test]
    fn plain_data_is_not_aggregated() {
        assert_eq!(deaggregate(b""), None);
        assert_eq!(
            deaggregate(b"hello world, a plain record of some length"),
            None
        );
        assert_eq!(deaggregate(&MAGIC), None);
        assert_eq!(deaggregate(&[0u8; 64]), None);
        let mut almost = wrap(&[0x0A, 0x01, b'a']);
        almost[0] = 0xF4;
        assert_eq!(deaggregate(&almost), None);
    }

    #[test]
    fn empty_message_has_no_user_records() {
        assert_eq!(deaggregate(&wrap(&[])), Some(vec![]));
    }

    #[test]
    fn indexes_out_of_range_fail() {
        // partition_key_index 1 with a one-entry table.
        assert_eq!(deaggregate(&wrap(&hex("0a01611a0608011a026869"))), None);
        // explicit_hash_key_index 0 with no table.
        assert_eq!(deaggregate(&wrap(&hex("0a01611a08080010001a026869"))), None);
        // Missing required data, then missing required partition_key_index.
        assert_eq!(deaggregate(&wrap(&hex("0a01611a020800"))), None);
        assert_eq!(deaggregate(&wrap(&hex("0a01611a041a026869"))), None);
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let body = hex(concat!(
            "2896e501",         // field 5, varint 29334
            "31",               // field 6, fixed64 ...
            "0102030405060708", //
            "3d01020304",       // field 7, fixed32
            "4203787878",       // field 8, length-delimited "xxx"
            "4b",               // field 9, start group
            "0801",             //   field 1 varint 1
            "5354",             //   field 10 group, empty
            "4c",               // field 9, end group
            "0a0161",           // partition_key_table "a"
            "1a10",             // records[0], 16 bytes:
            "0800",             //   partition_key_index 0
            "1a026869",         //   data "hi"
            "2205",             //   tags[0] (5 bytes):
            "0a016b",           //     key "k"
            "1000",             //     field 2 as a varint: unknown wire type for value, skipped
            "f80100",           //   field 31, varint 0
        ));
        assert_eq!(deaggregate(&wrap(&body)), Some(vec![rec("a", None, b"hi")]));
        // The same field with a mismatched wire type is skipped, not taken.
        let body = hex("0a016108011a0608001a026869");
        assert_eq!(deaggregate(&wrap(&body)), Some(vec![rec("a", None, b"hi")]));
    }

    #[test]
    fn malformed_protobuf_fails() {
        for body in [
            "0a05616263",                 // length beyond the end
            "4b0801",                     // group never closed
            "4b080154",                   // group closed by another field number
            "4c",                         // end group without start
            "0e00",                       // wire type 6
            "0f00",                       // wire type 7
            "0000",                       // field number 0
            "08ffffffffffffffffff02",     // varint of 11 bytes
            "08ffffffffffffffffff7f",     // varint overflowing 64 bits
            "1a0c0a0161",                 // record longer than the message
            "0a01611a0808001a0268692200", // tag without key
        ] {
            let body = hex(body);
            assert_eq!(deaggregate(&wrap(&body)), None, "{body:02x?}");
        }
    }

    #[test]
    fn deeply_nested_groups_are_rejected_not_recursed_forever() {
        let mut body = vec![0x4B; 10_000]; // field 9 start-group, over and over
        body.extend(std::iter::repeat_n(0x4C, 10_000));
        assert_eq!(deaggregate(&wrap(&body)), None);
        let mut ok = vec![0x4B; 10];
        ok.extend(std::iter::repeat_n(0x4C, 10));
        assert_eq!(deaggregate(&wrap(&ok)), Some(vec![]));
    }

    #[test]
    fn too_many_records_fail() {
        // One key and MAX_RECORDS + 1 minimal records (pk 0, empty data).
        let mut body = hex("0a0161");
        for _ in 0..=MAX_RECORDS {
            body.extend_from_slice(&[0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00]);
        }
        assert_eq!(deaggregate(&wrap(&body)), None);
        body.truncate(body.len() - 6);
        assert_eq!(
            deaggregate(&wrap(&body)).map(|v| v.len()),
            Some(MAX_RECORDS)
        );
    }

    #[test]
    fn key_amplification_is_bounded() {
        // A 64 KiB key referenced by 5,000 empty records would be 320 MiB of keys.
        let key = vec![b'k'; 64 << 10];
        let mut body = vec![0x0A];
        put_varint(&mut body, key.len() as u64);
        body.extend_from_slice(&key);
        for _ in 0..5_000 {
            body.extend_from_slice(&[0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00]);
        }
        assert_eq!(deaggregate(&wrap(&body)), None);
    }

    #[test]
    fn invalid_utf8_keys_are_replaced() {
        let body = hex("0a01ff1a0608001a026869");
        let got = deaggregate(&wrap(&body)).unwrap();
        assert_eq!(got[0].partition_key, "\u{FFFD}");
    }

    #[test]
    fn varint_sizes() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_size(v), "{v}");
            assert_eq!(Reader::new(&out).varint(), Some(v));
        }
    }

    fn user_record() -> impl Strategy<Value = UserRecord> {
        (
            prop_oneof!["[a-c]{1,3}", "\\PC{0,20}"],
            proptest::option::of(prop_oneof!["[0-9]{1,3}", "[0-9]{30,39}"]),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(partition_key, explicit_hash_key, data)| UserRecord {
                partition_key,
                explicit_hash_key,
                data,
            })
    }

    fn user_records(max: usize) -> impl Strategy<Value = Vec<UserRecord>> {
        proptest::collection::vec(user_record(), 1..max)
    }

    proptest! {
        #[test]
        fn round_trip(records in user_records(40)) {
            let mut a = Aggregator::new();
            let mut predicted = 0;
            for r in &records {
                predicted = a.size_with(r);
                a.push(r.clone());
            }
            prop_assert_eq!(a.len(), records.len());
            let (bytes, pk, ehk) = a.finish().unwrap();
            prop_assert_eq!(bytes.len(), predicted);
            prop_assert_eq!(&pk, &records[0].partition_key);
            prop_assert_eq!(&ehk, &records[0].explicit_hash_key);
            prop_assert_eq!(deaggregate(&bytes), Some(records));
        }

        #[test]
        fn size_with_is_exact_at_every_step(records in user_records(20)) {
            for n in 1..=records.len() {
                let mut a = Aggregator::new();
                for r in &records[..n - 1] {
                    a.push(r.clone());
                }
                let predicted = a.size_with(&records[n - 1]);
                a.push(records[n - 1].clone());
                prop_assert_eq!(a.finish().unwrap().0.len(), predicted);
            }
        }

        #[test]
        fn arbitrary_protobuf_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = deaggregate(&wrap(&body));
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = deaggregate(&data);
        }
    }
}
