//! The one black-box test binary: every test starts a server in-process on port 0 (or the
//! real binary, for crash tests) and drives it through aws-sdk-kinesis or raw HTTP.

mod bounds;
mod cli;
mod cloudwatch;
mod crash;
mod disk_full;
mod encryption;
mod errors;
mod fuzz;
mod fuzz_corpus;
mod harness;
mod metrics;
mod reads;
mod resharding;
mod restart;
mod settings;
mod streams;
mod subscribe;
mod throttling;
mod writes;
