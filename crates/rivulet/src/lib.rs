//! Rivulet: a self-hosted streaming data platform that speaks the Amazon Kinesis Data
//! Streams API. `server::start` runs it on a listener; `main.rs` is the `rivulet` binary.

pub mod api;
pub mod canary;
pub mod cbor;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod control;
pub mod data;
pub mod httpc;
pub mod ids;
pub mod limits;
pub mod monitor;
pub mod server;
pub mod service;
pub mod storage;
