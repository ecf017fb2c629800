//! Kinesis quotas that shape requests and responses, in one place. Numbers come from
//! `shared/reference/kinesis-api.md` sections (a) and (c).

/// Largest request body read, checked before reading. A PutRecords request holds at most
/// 10 MiB of data and keys, which base64 and JSON inflate by about 4/3.
pub const REQUEST_BODY_BYTES_MAX: usize = 16 << 20;
/// Records in one PutRecords request.
pub const PUT_RECORDS_COUNT_MAX: usize = 500;
/// Data plus partition keys in one PutRecords request.
pub const PUT_RECORDS_BYTES_MAX: usize = 10 << 20;
/// Default largest record (data plus partition key), per stream `MaxRecordSizeInKiB`.
pub const RECORD_SIZE_KIB_DEFAULT: u32 = 1024;
/// Largest `Data` blob the model allows at all.
pub const DATA_BYTES_MAX: usize = 10 << 20;
/// Records and bytes one GetRecords call returns at most.
pub const GET_RECORDS_COUNT_MAX: usize = 10_000;
pub const GET_RECORDS_BYTES_MAX: usize = 10 << 20;
/// The least a GetRecords reads when memory for bodies in flight is short: it returns fewer
/// records rather than none (the first record is always returned whole).
pub const RECORD_BYTES_MIN_READ: usize = 1 << 20;
/// How long a shard iterator and a ListShards NextToken stay valid.
pub const ITERATOR_LIFETIME_MS: i64 = 300_000;
pub const NEXT_TOKEN_LIFETIME_MS: i64 = 300_000;
/// Retention bounds and default.
pub const RETENTION_HOURS_MIN: i64 = 24;
pub const RETENTION_HOURS_MAX: i64 = 8760;
pub const RETENTION_HOURS_DEFAULT: i64 = 24;
/// Shards a stream gets when CreateStream names no count, and on-demand streams start with.
pub const SHARD_COUNT_DEFAULT: u32 = 4;
/// Tags on one stream.
pub const TAGS_PER_STREAM_MAX: usize = 50;
/// DescribeStream, ListStreams and ListShards page sizes: default and the cap applied to
/// larger requested limits.
pub const DESCRIBE_STREAM_SHARDS_MAX: usize = 100;
pub const LIST_STREAMS_MAX: usize = 100;
pub const LIST_SHARDS_MAX: usize = 1000;
pub const LIST_TAGS_DEFAULT: usize = 10;
/// Account defaults reported by DescribeLimits.
pub const SHARD_LIMIT_DEFAULT: u32 = 500;
pub const ON_DEMAND_STREAM_COUNT_LIMIT: u32 = 50;

const _: () = assert!(PUT_RECORDS_BYTES_MAX * 4 / 3 < REQUEST_BODY_BYTES_MAX);
const _: () = assert!(GET_RECORDS_BYTES_MAX >= (RECORD_SIZE_KIB_DEFAULT as usize) << 10);
const _: () = assert!(RETENTION_HOURS_MIN <= RETENTION_HOURS_DEFAULT);
