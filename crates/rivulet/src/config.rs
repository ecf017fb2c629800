//! The validated settings of a running server. `main.rs` builds one from flags and
//! `RIVULET_*` environment variables; tests build one directly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::data::throughput::ShardRates;

/// `--writer-threads` by default.
pub const WRITER_THREADS_DEFAULT: usize = 4;
/// `--inflight-mib` by default: room for a few of the largest requests and GetRecords
/// responses at once, and far more than a 2-core machine fills at full speed.
pub const INFLIGHT_MIB_DEFAULT: usize = 128;
/// The smallest budget: one largest request body and one largest GetRecords together.
pub const INFLIGHT_MIB_MIN: usize = 48;

/// When an acknowledged write reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every acknowledged batch is fsynced first; concurrent writers share an fsync (group
    /// commit). An acknowledged record survives a process crash and a power loss.
    Always,
    /// Writes are acknowledged from the page cache and fsynced every `ms`. An acknowledged
    /// record survives a process crash; a power loss can lose the last interval.
    Interval { ms: u64 },
    /// Never fsync (the OS writes back when it likes). Survives a process crash only.
    Never,
}

impl FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<FsyncPolicy, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            "interval" => Ok(FsyncPolicy::Interval { ms: 1000 }),
            other => match other.strip_prefix("interval:").map(str::parse) {
                Some(Ok(ms)) if ms > 0 => Ok(FsyncPolicy::Interval { ms }),
                _ => Err(format!(
                    "unknown fsync policy '{other}': expected always, interval, interval:MS or never"
                )),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    pub fsync: FsyncPolicy,
    /// How long streams stay CREATING, DELETING or UPDATING before the change completes.
    pub state_delay_ms: u64,
    /// Account-wide limit on open shards, as DescribeLimits reports it.
    pub shard_limit: u32,
    /// A segment is sealed and a new one started at this size.
    pub segment_bytes_max: u64,
    /// How often retention is enforced and pending state changes are applied.
    pub janitor_interval_ms: u64,
    /// Shard writer threads. Each owns a share of the shards and group-commits for them.
    pub writer_threads: usize,
    /// Open connections at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body once its headers are in.
    pub body_read_timeout_ms: u64,
    /// How long a response may wait for a client that reads none of it before the
    /// connection is closed.
    pub write_stall_timeout_ms: u64,
    /// Bytes of request and response bodies held in memory at once (`--inflight-mib`).
    pub inflight_bytes_max: usize,
    /// How long a request waits for room under `inflight_bytes_max` before it is refused.
    pub inflight_wait_ms: u64,
    /// Per-shard throughput limits (`--limits aws` or `off`, plus overrides).
    pub shard_rates: ShardRates,
    /// Whether control-plane calls are held to Kinesis's calls per second.
    pub control_plane_limits: bool,
    /// Aliases (`alias/NAME`) of customer keys the key store creates if missing, besides
    /// the AWS-managed `alias/aws/kinesis`.
    pub kms_key_aliases: Vec<String>,
    /// Metric series the store holds at most.
    pub metric_series_max: usize,
    /// `--alarm-topic NAME=TARGET`: where alarm actions naming an SNS topic go.
    pub alarm_topics: Vec<(String, String)>,
    /// The built-in health-check canary, when on.
    pub canary: Option<crate::canary::CanaryConfig>,
}

impl Config {
    /// Defaults for a data directory; everything else as `rivulet serve` defaults it.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4567)),
            data_dir: data_dir.into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            fsync: FsyncPolicy::Always,
            state_delay_ms: 0,
            shard_limit: crate::limits::SHARD_LIMIT_DEFAULT,
            segment_bytes_max: 16 << 20,
            janitor_interval_ms: 1000,
            writer_threads: WRITER_THREADS_DEFAULT,
            max_connections: 65_536,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 60_000,
            write_stall_timeout_ms: 15_000,
            inflight_bytes_max: INFLIGHT_MIB_DEFAULT << 20,
            inflight_wait_ms: 5_000,
            shard_rates: ShardRates::AWS,
            control_plane_limits: true,
            kms_key_aliases: Vec::new(),
            metric_series_max: crate::monitor::SERIES_MAX_DEFAULT,
            alarm_topics: Vec::new(),
            canary: None,
        }
    }

    /// Checks the relations between fields that the flag parser cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "account id '{}' must be 12 digits",
                self.account_id
            ));
        }
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "region '{}' must be letters, digits and dashes",
                self.region
            ));
        }
        if self.inflight_bytes_max < INFLIGHT_MIB_MIN << 20 {
            return Err(format!(
                "the in-flight body budget must be at least {INFLIGHT_MIB_MIN} MiB, room for \
                 the largest request and the largest GetRecords at once"
            ));
        }
        if self.max_connections == 0 {
            return Err("max connections must be at least 1".into());
        }
        if self.writer_threads == 0 || self.writer_threads > 64 {
            return Err("writer threads must be between 1 and 64".into());
        }
        if let Some(bad) = self
            .kms_key_aliases
            .iter()
            .find(|a| !a.starts_with("alias/") || a.len() <= 6)
        {
            return Err(format!("key alias '{bad}' must look like alias/NAME"));
        }
        if self.segment_bytes_max < 1 << 20 {
            return Err("segments must be at least 1 MiB".into());
        }
        Ok(())
    }
}
