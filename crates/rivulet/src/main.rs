//! The `rivulet` binary. `rivulet serve` runs the server; later subcommands are clients of
//! the same API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rivulet::cli;
use rivulet::client::{Client, Connection};
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
    Serve(Box<ServeArgs>),
    /// Run the health-check canary against an endpoint: put a timestamped record every
    /// interval, consume it, publish the latency and keep its alarm installed.
    Canary(CanaryArgs),
    /// Alarm helpers.
    #[command(subcommand)]
    Alarms(AlarmsCommand),
    /// Stream administration: create, list, describe, delete, scale, split, merge,
    /// retention, mode.
    Stream {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: cli::stream::StreamCommand,
    },
    /// Put records from arguments, standard input, or an NDJSON or CSV file.
    Put {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::put::PutArgs,
    },
    /// Follow every shard of a stream and print its records.
    Tail {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::tail::TailArgs,
    },
    /// A live per-shard view of a stream's traffic that flags hot shards.
    Top {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::top::TopArgs,
    },
    /// Generate load and measure throughput and latency.
    Bench {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::bench::BenchArgs,
    },
    /// Replay NDJSON events (plain, gzip or lz4) in the order of their timestamps.
    Replay {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::replay::ReplayArgs,
    },
    /// Demo data: purchase events or stock tickers, as NDJSON or into a stream.
    Gen {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        args: cli::generate::GenArgs,
    },
}

#[derive(Args)]
struct CanaryOptions {
    /// The canary's stream, created ON_DEMAND if missing.
    #[arg(long = "canary-stream", env = "RIVULET_CANARY_STREAM", default_value = rivulet::canary::DEFAULT_STREAM)]
    stream: String,
    /// Seconds between canary records.
    #[arg(
        long = "canary-interval-secs",
        env = "RIVULET_CANARY_INTERVAL_SECS",
        default_value_t = 60
    )]
    interval_secs: u64,
    /// Action of the canary's alarm on ALARM and OK (an ARN or http:// URL); repeatable.
    #[arg(long = "canary-alarm-action")]
    alarm_actions: Vec<String>,
}

#[derive(Args)]
struct CanaryArgs {
    /// The endpoint of the Kinesis and CloudWatch APIs.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:4567"
    )]
    endpoint_url: String,
    /// Which half to run: both, produce or consume.
    #[arg(long, value_enum, default_value = "both")]
    role: rivulet::canary::Role,
    #[command(flatten)]
    options: CanaryOptions,
}

#[derive(Subcommand)]
enum AlarmsCommand {
    /// Install the recommended alarms for a stream: iterator age >= 60 s, read and write
    /// throttling >= 1 %, PutRecord(s) success <= 95 %, GetRecords success <= 98 %.
    InstallRecommended {
        stream: String,
        #[arg(
            long,
            env = "AWS_ENDPOINT_URL",
            default_value = "http://127.0.0.1:4567"
        )]
        endpoint_url: String,
        /// Action on ALARM and OK (an ARN or http:// URL); repeatable.
        #[arg(long)]
        action: Vec<String>,
    },
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
    /// MiB of request and response bodies held in memory at once; past it, requests wait a
    /// few seconds for room and are then refused with a retryable ServiceUnavailable.
    #[arg(long, env = "RIVULET_INFLIGHT_MIB", default_value_t = rivulet::config::INFLIGHT_MIB_DEFAULT)]
    inflight_mib: usize,
    /// Shard writer threads: each appends and group-commits the writes of a share of the
    /// shards.
    #[arg(long, env = "RIVULET_WRITER_THREADS", default_value_t = rivulet::config::WRITER_THREADS_DEFAULT)]
    writer_threads: usize,
    /// Segment size in MiB before a new segment file is started.
    #[arg(long, env = "RIVULET_SEGMENT_MIB", default_value_t = 16)]
    segment_mib: u64,
    /// Run the health-check canary inside the server.
    #[arg(long, env = "RIVULET_CANARY")]
    canary: bool,
    #[command(flatten)]
    canary_options: CanaryOptions,
    /// Where alarm actions naming an SNS topic go: NAME=http://URL, NAME=exec:COMMAND or
    /// NAME=kinesis:STREAM; repeatable.
    #[arg(long = "alarm-topic", env = "RIVULET_ALARM_TOPICS", value_delimiter = ',', value_parser = rivulet::monitor::notify::parse_topic)]
    alarm_topics: Vec<(String, String)>,
    /// Metric series kept at most (stream, shard and custom metrics together).
    #[arg(long, env = "RIVULET_METRIC_SERIES_MAX", default_value_t = rivulet::monitor::SERIES_MAX_DEFAULT)]
    metric_series_max: usize,
}

fn canary_config(o: CanaryOptions) -> anyhow::Result<rivulet::canary::CanaryConfig> {
    anyhow::ensure!(
        o.interval_secs >= 1,
        "the canary interval must be at least 1 second"
    );
    let mut c = rivulet::canary::CanaryConfig::new(
        &o.stream,
        std::time::Duration::from_secs(o.interval_secs),
    );
    c.alarm_actions = o.alarm_actions;
    Ok(c)
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
        Command::Serve(args) => serve(*args),
        Command::Canary(args) => canary(args),
        Command::Alarms(AlarmsCommand::InstallRecommended {
            stream,
            endpoint_url,
            action,
        }) => install_recommended(&stream, &endpoint_url, &action),
        Command::Stream { conn, command } => {
            client_command(&conn, |c| cli::stream::run_owned(c, command))
        }
        Command::Put { conn, args } => client_command(&conn, |c| cli::put::run(c, args)),
        Command::Tail { conn, args } => client_command(&conn, |c| cli::tail::run(c, args)),
        Command::Top { conn, args } => client_command(&conn, |c| cli::top::run(c, args)),
        Command::Bench { conn, args } => client_command(&conn, |c| cli::bench::run(c, args)),
        Command::Replay { conn, args } => client_command(&conn, |c| cli::replay::run(c, args)),
        Command::Gen { conn, args } => {
            let client = match &args.stream {
                Some(_) => Some(Client::new(&conn)?),
                None => None,
            };
            runtime()?.block_on(cli::generate::run(client, args))
        }
    }
}

/// Runs a client command on a fresh runtime; stops it on Ctrl-C.
fn client_command<F, Fut>(conn: &Connection, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let client = Client::new(conn)?;
    runtime()?.block_on(async move {
        tokio::select! {
            r = f(client) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn canary(args: CanaryArgs) -> anyhow::Result<()> {
    let mut config = canary_config(args.options)?;
    config.role = args.role;
    let endpoint = args.endpoint_url.trim_end_matches('/').to_owned();
    runtime()?.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(rivulet::canary::run(endpoint, config, stopped));
        shutdown_signal().await;
        let _ = stop.send(true);
        let _ = task.await;
        anyhow::Ok(())
    })
}

fn install_recommended(stream: &str, endpoint: &str, actions: &[String]) -> anyhow::Result<()> {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let mut url = format!(
        "{}/rivulet/alarms/recommended?stream={}",
        endpoint.trim_end_matches('/'),
        encode(stream)
    );
    for a in actions {
        url.push_str(&format!("&action={}", encode(a)));
    }
    runtime()?.block_on(async move {
        let r = rivulet::httpc::post(&url, &[], Vec::new(), std::time::Duration::from_secs(30))
            .await
            .map_err(anyhow::Error::msg)?;
        let body = String::from_utf8_lossy(&r.body);
        anyhow::ensure!(r.status == 200, "HTTP {}: {body}", r.status);
        let v: serde_json::Value = serde_json::from_str(&body)?;
        for name in v["AlarmNames"].as_array().into_iter().flatten() {
            println!("{}", name.as_str().unwrap_or_default());
        }
        anyhow::Ok(())
    })
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
    config.inflight_bytes_max = args.inflight_mib.saturating_mul(1 << 20);
    config.writer_threads = args.writer_threads;
    config.alarm_topics = args.alarm_topics;
    config.metric_series_max = args.metric_series_max;
    if args.canary {
        config.canary = Some(canary_config(args.canary_options)?);
    }
    config.validate().map_err(anyhow::Error::msg)?;
    runtime()?.block_on(async move {
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
