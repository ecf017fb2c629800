//! `seglog`: a durable, append-only log of records for one shard, kept as a directory of
//! segment files.
//!
//! It knows nothing of HTTP, async runtimes, Kinesis or clocks: positions are dense `u64`s
//! counted from 0, timestamps are passed in by the caller, and durability is the caller's
//! choice at each `commit`. The server builds shards, sequence numbers and iterators on top.
//! `docs/format.md` describes the files byte by byte; `format.rs` is the only code that
//! reads or writes them.

mod error;
pub mod format;
pub mod fs;
mod log;

pub use error::{Error, Result};
pub use format::{Record, RecordRef};
pub use log::{Appended, Log, LogConfig, ReadBatch, Recovery, TrimReport};
