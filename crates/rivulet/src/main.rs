//! The `rivulet` binary. `rivulet serve` runs the server; later subcommands are clients of
//! the same API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rivulet::clock::SystemClock;
use rivulet::config::{Config, FsyncPolicy};
use rivulet::data::throughput::ShardRates;

#[derive(Parser)]
#[command(
    name = "rivulet",
    version,
    about = "A self-hosted, Kinesis-compatible streaming data platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the Kinesis Data Streams API on one port, stored under --data-dir.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RIVULET_LISTEN", default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Directory holding streams and their records.
    #[arg(long, env = "RIVULET_DATA_DIR", default_value = "./rivulet-data")]
    data_dir: PathBuf,
    /// Region used in ARNs.
    #[arg(long, env = "RIVULET_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id used in ARNs and error messages.
    #[arg(long, env = "RIVULET_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// When acknowledged writes are fsynced: always (before every acknowledgement, with
    /// group commit), interval[:MS] (every MS milliseconds, default 1000), or never.
    #[arg(long, env = "RIVULET_FSYNC", default_value = "always")]
    fsync: FsyncPolicy,
    /// Milliseconds a stream stays CREATING or DELETING.
    #[arg(long, env = "RIVULET_STATE_DELAY_MS", default_value_t = 0)]
    state_delay_ms: u64,
    /// Account-wide open shard limit.
    #[arg(long, env = "RIVULET_SHARD_LIMIT", default_value_t = rivulet::limits::SHARD_LIMIT_DEFAULT)]
    shard_limit: u32,
    /// Throughput limits: `aws` holds every shard to Kinesis's rates (writes 1 MiB/s and
    /// 1,000 records/s, reads 2 MiB/s and 5 calls/s) and control-plane calls to their
    /// calls per second; `off` lifts them all.
    #[arg(long, env = "RIVULET_LIMITS", default_value = "aws", value_parser = ["aws", "off"])]
    limits: String,
    /// Overrides the per-shard write rate in bytes per second.
    #[arg(long, env = "RIVULET_SHARD_WRITE_BYTES_PER_SEC")]
    shard_write_bytes_per_sec: Option<u64>,
    /// Overrides the per-shard write rate in records per second.
    #[arg(long, env = "RIVULET_SHARD_WRITE_RECORDS_PER_SEC")]
    shard_write_records_per_sec: Option<u64>,
    /// Overrides the per-shard read rate in bytes per second.
    #[arg(long, env = "RIVULET_SHARD_READ_BYTES_PER_SEC")]
    shard_read_bytes_per_sec: Option<u64>,
    /// Overrides the per-shard GetRecords calls per second.
    #[arg(long, env = "RIVULET_SHARD_READ_CALLS_PER_SEC")]
    shard_read_calls_per_sec: Option<u64>,
    /// Creates a customer key for stream encryption under this alias (`alias/NAME`) if
    /// none exists; repeatable. `alias/aws/kinesis` always exists.
    #[arg(long = "kms-key", env = "RIVULET_KMS_KEYS", value_delimiter = ',')]
    kms_keys: Vec<String>,
    /// Open connections at once; new ones beyond it are closed.
    #[arg(long, env = "RIVULET_MAX_CONNECTIONS", default_value_t = 65_536)]
    max_connections: usize,
    /// Segment size in MiB before a new segment file is started.
    #[arg(long, env = "RIVULET_SEGMENT_MIB", default_value_t = 16)]
    segment_mib: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RIVULET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::new(args.data_dir);
    config.listen = args.listen;
    config.region = args.region;
    config.account_id = args.account_id;
    config.fsync = args.fsync;
    config.state_delay_ms = args.state_delay_ms;
    config.shard_limit = args.shard_limit;
    config.segment_bytes_max = args.segment_mib << 20;
    let aws = args.limits == "aws";
    let mut rates = if aws {
        ShardRates::AWS
    } else {
        ShardRates::OFF
    };
    let overrides = [
        (&mut rates.write_bytes_per_s, args.shard_write_bytes_per_sec),
        (
            &mut rates.write_records_per_s,
            args.shard_write_records_per_sec,
        ),
        (&mut rates.read_bytes_per_s, args.shard_read_bytes_per_sec),
        (&mut rates.read_calls_per_s, args.shard_read_calls_per_sec),
    ];
    for (rate, value) in overrides {
        if value.is_some() {
            *rate = value;
        }
    }
    config.shard_rates = rates;
    config.control_plane_limits = aws;
    config.kms_key_aliases = args.kms_keys;
    config.max_connections = args.max_connections;
    config.validate().map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let data_dir = config.data_dir.clone();
        let server = rivulet::server::start(config, Arc::new(SystemClock), listener)
            .await
            .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
        tracing::info!(
            addr = %server.addr(),
            data_dir = %data_dir.display(),
            startup_ms = started.elapsed().as_millis() as u64,
            "rivulet is serving the Kinesis API"
        );
        shutdown_signal().await;
        tracing::info!("shutting down");
        server.stop().await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
