//! The data plane: shard writers with group commit, sequence numbers and shard iterators.

pub mod iterator;
pub mod sequence;
pub mod throughput;
pub mod writer;
