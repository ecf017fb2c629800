//! The on-disk codec: segment headers, record batches and index files, byte by byte.
//!
//! `docs/format.md` is the prose version of this file; change both together.
//! Every persisted integer is fixed width and little-endian, and only this module reads or
//! writes them.

/// First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RVLTSEG1";
/// First 8 bytes of every index file.
pub const INDEX_MAGIC: &[u8; 8] = b"RVLTIDX1";
/// Segment header: magic, base position, crc32 of the first 16 bytes, reserved.
pub const SEGMENT_HEADER_LEN: u64 = 24;
/// Batch header: len u32, crc u32, base position u64, record count u32, reserved u32.
pub const BATCH_HEADER_LEN: usize = 24;
/// Record header inside a batch: timestamp i64, flags u8, key len u16, data len u32.
pub const RECORD_HEADER_LEN: usize = 15;
/// The largest batch the format accepts. A Kinesis request is at most 10 MiB of data plus
/// 500 partition keys, so 64 MiB leaves room while still catching a garbage length early.
pub const BATCH_LEN_MAX: usize = 64 << 20;
/// Index file fixed part: magic, entry count, segment len, end position, min and max
/// timestamps. Entries follow, then a crc32 over everything before it.
pub const INDEX_HEADER_LEN: usize = 8 + 4 + 8 + 8 + 8 + 8;
pub const INDEX_ENTRY_LEN: usize = 24;

/// One record as the caller hands it in.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub timestamp_ms: i64,
    /// Opaque to the log; the server marks encrypted payloads here.
    pub flags: u8,
    pub key: &'a [u8],
    pub data: &'a [u8],
}

/// One record as the log hands it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub position: u64,
    pub timestamp_ms: i64,
    pub flags: u8,
    pub key: Vec<u8>,
    pub data: Vec<u8>,
}

/// A sparse index entry: the batch starting at `offset` holds `position` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub position: u64,
    pub timestamp_ms: i64,
    pub offset: u64,
}

pub fn encode_segment_header(base_position: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
    out[..8].copy_from_slice(SEGMENT_MAGIC);
    out[8..16].copy_from_slice(&base_position.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Returns the base position, or why the header is invalid.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, &'static str> {
    if bytes.len() < SEGMENT_HEADER_LEN as usize {
        return Err("segment header is truncated");
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err("bad segment magic");
    }
    if crc32fast::hash(&bytes[..16]) != u32_at(bytes, 16) {
        return Err("segment header checksum mismatch");
    }
    Ok(u64_at(bytes, 8))
}

/// The encoded length of a batch holding `records`.
pub fn batch_len(records: &[RecordRef<'_>]) -> usize {
    BATCH_HEADER_LEN
        + records
            .iter()
            .map(|r| RECORD_HEADER_LEN + r.key.len() + r.data.len())
            .sum::<usize>()
}

/// Appends one encoded batch to `out`. The caller has checked `batch_len` against
/// `BATCH_LEN_MAX` and every key against `u16::MAX`.
pub fn encode_batch(out: &mut Vec<u8>, base_position: u64, records: &[RecordRef<'_>]) {
    let start = out.len();
    let len = batch_len(records);
    assert!(len <= BATCH_LEN_MAX, "batch length checked by the caller");
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // crc, patched below
    out.extend_from_slice(&base_position.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for r in records {
        assert!(
            r.key.len() <= u16::MAX as usize,
            "key length checked by the caller"
        );
        out.extend_from_slice(&r.timestamp_ms.to_le_bytes());
        out.push(r.flags);
        out.extend_from_slice(&(r.key.len() as u16).to_le_bytes());
        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(r.key);
        out.extend_from_slice(r.data);
    }
    debug_assert_eq!(out.len() - start, len);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed part of a batch, read before the body.
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader {
    pub len: usize,
    pub crc: u32,
    pub base_position: u64,
    pub record_count: u32,
}

pub fn decode_batch_header(bytes: &[u8]) -> Result<BatchHeader, &'static str> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err("batch header is truncated");
    }
    let len = u32_at(bytes, 0) as usize;
    if len < BATCH_HEADER_LEN {
        return Err("batch length is smaller than its header");
    }
    if len > BATCH_LEN_MAX {
        return Err("batch length is larger than the maximum");
    }
    Ok(BatchHeader {
        len,
        crc: u32_at(bytes, 4),
        base_position: u64_at(bytes, 8),
        record_count: u32_at(bytes, 16),
    })
}

/// Checks the checksum of a whole batch and splits it into records. `batch` starts with the
/// header. The callback sees each record in order; records borrow from `batch`.
pub fn decode_batch<'a>(
    batch: &'a [u8],
    mut each: impl FnMut(u64, RecordRef<'a>),
) -> Result<BatchHeader, &'static str> {
    let header = decode_batch_header(batch)?;
    if batch.len() != header.len {
        return Err("batch is truncated");
    }
    if crc32fast::hash(&batch[8..]) != header.crc {
        return Err("batch checksum mismatch");
    }
    let mut at = BATCH_HEADER_LEN;
    for i in 0..header.record_count as u64 {
        if batch.len() - at < RECORD_HEADER_LEN {
            return Err("record header runs past the batch");
        }
        let timestamp_ms = u64_at(batch, at) as i64;
        let flags = batch[at + 8];
        let key_len = u16::from_le_bytes([batch[at + 9], batch[at + 10]]) as usize;
        let data_len = u32_at(batch, at + 11) as usize;
        at += RECORD_HEADER_LEN;
        if batch.len() - at < key_len + data_len {
            return Err("record body runs past the batch");
        }
        let key = &batch[at..at + key_len];
        let data = &batch[at + key_len..at + key_len + data_len];
        at += key_len + data_len;
        each(
            header.base_position + i,
            RecordRef {
                timestamp_ms,
                flags,
                key,
                data,
            },
        );
    }
    if at != batch.len() {
        return Err("batch has bytes after its last record");
    }
    Ok(header)
}

/// What an index file records about its sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub segment_len: u64,
    pub end_position: u64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub entries: Vec<IndexEntry>,
}

pub fn encode_index(index: &IndexFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + index.entries.len() * INDEX_ENTRY_LEN + 4);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(index.entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&index.segment_len.to_le_bytes());
    out.extend_from_slice(&index.end_position.to_le_bytes());
    out.extend_from_slice(&index.min_timestamp_ms.to_le_bytes());
    out.extend_from_slice(&index.max_timestamp_ms.to_le_bytes());
    for e in &index.entries {
        out.extend_from_slice(&e.position.to_le_bytes());
        out.extend_from_slice(&e.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_index(bytes: &[u8]) -> Result<IndexFile, &'static str> {
    if bytes.len() < INDEX_HEADER_LEN + 4 || &bytes[..8] != INDEX_MAGIC {
        return Err("bad index header");
    }
    let count = u32_at(bytes, 8) as usize;
    let body_len = INDEX_HEADER_LEN + count * INDEX_ENTRY_LEN;
    if bytes.len() != body_len + 4 {
        return Err("index length does not match its entry count");
    }
    if crc32fast::hash(&bytes[..body_len]) != u32_at(bytes, body_len) {
        return Err("index checksum mismatch");
    }
    let entries = (0..count)
        .map(|i| {
            let at = INDEX_HEADER_LEN + i * INDEX_ENTRY_LEN;
            IndexEntry {
                position: u64_at(bytes, at),
                timestamp_ms: u64_at(bytes, at + 8) as i64,
                offset: u64_at(bytes, at + 16),
            }
        })
        .collect();
    Ok(IndexFile {
        segment_len: u64_at(bytes, 12),
        end_position: u64_at(bytes, 20),
        min_timestamp_ms: u64_at(bytes, 28) as i64,
        max_timestamp_ms: u64_at(bytes, 36) as i64,
        entries,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trips() {
        let records = [
            RecordRef {
                timestamp_ms: 5,
                flags: 0,
                key: b"k1",
                data: b"hello",
            },
            RecordRef {
                timestamp_ms: 6,
                flags: 1,
                key: b"",
                data: b"",
            },
        ];
        let mut buf = Vec::new();
        encode_batch(&mut buf, 42, &records);
        assert_eq!(buf.len(), batch_len(&records));
        let mut seen = Vec::new();
        decode_batch(&buf, |p, r| {
            seen.push((p, r.timestamp_ms, r.flags, r.key, r.data))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (42, 5, 0, &b"k1"[..], &b"hello"[..]),
                (43, 6, 1, &b""[..], &b""[..])
            ]
        );
    }

    #[test]
    fn batch_detects_a_flipped_bit() {
        let mut buf = Vec::new();
        encode_batch(
            &mut buf,
            0,
            &[RecordRef {
                timestamp_ms: 1,
                flags: 0,
                key: b"k",
                data: b"d",
            }],
        );
        for i in 8..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_batch(&bad, |_, _| {}).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn index_round_trips_and_detects_damage() {
        let index = IndexFile {
            segment_len: 1000,
            end_position: 7,
            min_timestamp_ms: 1,
            max_timestamp_ms: 9,
            entries: vec![IndexEntry {
                position: 0,
                timestamp_ms: 1,
                offset: 24,
            }],
        };
        let bytes = encode_index(&index);
        assert_eq!(decode_index(&bytes).unwrap(), index);
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        assert!(decode_index(&bad).is_err());
    }

    #[test]
    fn segment_header_round_trips() {
        let h = encode_segment_header(123);
        assert_eq!(decode_segment_header(&h), Ok(123));
        let mut bad = h;
        bad[9] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }
}
