//! The `rivulet` CLI, run as a process against a real server process (real clock): stream
//! administration, put in every input form with aggregation and retries, tail across a
//! reshard, bench, replay, gen, top, and the README's hot-shard walk-through.

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

/// A `rivulet serve` process on a free port, killed on drop.
pub struct RealServer {
    child: Child,
    pub endpoint: String,
    _dir: Option<TempDir>,
}

impl RealServer {
    pub fn start(extra: &[&str]) -> RealServer {
        let dir = TempDir::new("cli");
        let mut s = RealServer::start_in(dir.path(), extra);
        s._dir = Some(dir);
        s
    }

    /// Starts on a data dir the caller keeps.
    pub fn start_in(dir: &std::path::Path, extra: &[&str]) -> RealServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir)
            .args(["--limits", "off"])
            .args(extra)
            .env("RIVULET_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RealServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _dir: None,
        }
    }

    /// Runs `rivulet ARGS --endpoint-url …` (after the subcommand path) and returns its output.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--endpoint-url", &self.endpoint])
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let input = stdin.unwrap_or(b"").to_vec();
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        child.wait_with_output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    pub fn ok_with(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "rivulet {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        let last = out.lines().last().unwrap_or("");
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The stream's records as `tail --format json` prints them: at most `count`, and what
    /// arrived within three seconds.
    pub fn tail_all(&self, stream: &str, count: usize) -> Vec<Value> {
        let n = count.to_string();
        let args = [
            "tail",
            stream,
            "--from",
            "trim-horizon",
            "--format",
            "json",
            "--count",
            &n,
        ];
        self.ok(&[&args[..], &["--until", "+3s"]].concat())
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_commands_manage_a_stream_end_to_end() {
    let s = RealServer::start(&[]);
    let created = s.json(&["stream", "create", "admin", "--shards", "2", "--json"]);
    assert_eq!(created["Stream"]["StreamStatus"], "ACTIVE");
    assert_eq!(created["Shards"].as_array().unwrap().len(), 2);
    let table = s.ok(&["stream", "describe", "admin"]);
    assert!(table.contains("shardId-000000000001  open"), "{table}");
    assert!(
        table.contains("170141183460469231731687303715884105728"),
        "{table}"
    );
    let list = s.json(&["stream", "list", "--json"]);
    assert_eq!(list["Streams"][0]["StreamName"], "admin");
    let scaled = s.json(&["stream", "scale", "admin", "--shards", "4", "--json"]);
    assert_eq!(scaled["Stream"]["OpenShardCount"], 4);
    let split = s.json(&["stream", "split", "admin", "shardId-000000000002", "--json"]);
    assert_eq!(split["Stream"]["OpenShardCount"], 5);
    let open: Vec<String> = split["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["SequenceNumberRange"]["EndingSequenceNumber"].is_null())
        .map(|s| s["ShardId"].as_str().unwrap().to_owned())
        .collect();
    let (a, b) = (&open[open.len() - 2], &open[open.len() - 1]);
    let merged = s.json(&["stream", "merge", "admin", a, b, "--json"]);
    assert_eq!(merged["Stream"]["OpenShardCount"], 4);
    let kept = s.json(&["stream", "retention", "admin", "48", "--json"]);
    assert_eq!(kept["Stream"]["RetentionPeriodHours"], 48);
    let kept = s.json(&["stream", "retention", "admin", "24", "--json"]);
    assert_eq!(kept["Stream"]["RetentionPeriodHours"], 24);
    let mode = s.json(&["stream", "mode", "admin", "on-demand", "--json"]);
    assert_eq!(
        mode["Stream"]["StreamModeDetails"]["StreamMode"],
        "ON_DEMAND"
    );
    s.ok(&["stream", "delete", "admin"]);
    assert_eq!(
        s.json(&["stream", "list", "--json"])["Streams"],
        serde_json::json!([])
    );
    // Errors come back as the API's error and a failing exit status.
    let out = s.run(&["stream", "describe", "missing"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceNotFoundException"));
}

#[tokio::test(flavor = "multi_thread")]
async fn put_takes_arguments_stdin_ndjson_csv_and_aggregates_and_tail_reads_them_back() {
    let s = RealServer::start(&[]);
    s.ok(&["stream", "create", "p", "--shards", "2"]);
    s.ok(&["put", "p", "one", "two", "--partition-key", "arg-{n}"]);
    s.ok_with(
        &["put", "p", "--partition-key", "line"],
        Some(b"three\nfour\n"),
    );
    let dir = TempDir::new("put-files");
    let ndjson = dir.path().join("events.ndjson");
    std::fs::write(
        &ndjson,
        "{\"user\":\"u1\",\"v\":5}\n{\"user\":\"u2\",\"v\":6}\n",
    )
    .unwrap();
    s.ok(&[
        "put",
        "p",
        "--file",
        ndjson.to_str().unwrap(),
        "--partition-key",
        "user-{user}",
    ]);
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "id,name\n7,\"x, y\"\n").unwrap();
    let summary: Value = serde_json::from_str(
        s.ok(&[
            "put",
            "p",
            "--file",
            csv.to_str().unwrap(),
            "--partition-key",
            "{id}",
            "--json",
        ])
        .trim(),
    )
    .unwrap();
    assert_eq!(summary["records"], 1);
    let agg = s.ok_with(
        &[
            "put",
            "p",
            "--aggregate",
            "--partition-key",
            "agg-{n}",
            "--lanes",
            "1",
            "--json",
        ],
        Some(b"a1\na2\na3\n"),
    );
    let agg: Value = serde_json::from_str(agg.trim()).unwrap();
    assert_eq!(
        (agg["records"].as_u64(), agg["kinesis_records"].as_u64()),
        (Some(3), Some(1))
    );

    let records = s.tail_all("p", 10);
    assert_eq!(records.len(), 10, "{records:#?}");
    let key_of = |k: &str| {
        records
            .iter()
            .find(|r| r["partitionKey"] == k)
            .cloned()
            .unwrap()
    };
    assert_eq!(key_of("arg-1")["text"], "one");
    assert_eq!(key_of("arg-2")["text"], "two");
    assert_eq!(key_of("user-u2")["data"]["v"], 6);
    assert_eq!(key_of("7")["text"], "7,\"x, y\"");
    // The two lines of one key are in order.
    let lines: Vec<&Value> = records
        .iter()
        .filter(|r| r["partitionKey"] == "line")
        .collect();
    assert_eq!(
        (lines[0]["text"].as_str(), lines[1]["text"].as_str()),
        (Some("three"), Some("four"))
    );
    // The aggregate comes back as its three user records, one sequence number.
    let users: Vec<&Value> = records
        .iter()
        .filter(|r| r["subSequence"].is_u64())
        .collect();
    assert_eq!(users.len(), 3);
    assert_eq!(users[0]["sequence"], users[2]["sequence"]);
    assert_eq!(users[2]["text"], "a3");
    assert_eq!(users[2]["partitionKey"], "agg-3");
    // Without de-aggregation it is one record starting with the KPL magic.
    let raw = s.ok(&[
        "tail",
        "p",
        "--from",
        "trim-horizon",
        "--format",
        "hex",
        "--count",
        "10",
        "--no-deaggregate",
        "--until",
        "+3s",
    ]);
    assert_eq!(
        raw.lines().filter(|l| l.contains(" f3899ac2")).count(),
        1,
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn put_retries_throttled_records_until_every_one_is_written() {
    // One shard held to 200 records/s: 1,000 records need several rounds of retries.
    let s = RealServer::start(&["--shard-write-records-per-sec", "200"]);
    s.ok(&["stream", "create", "slow", "--shards", "1"]);
    let input: String = (0..1000).map(|i| format!("{i}\n")).collect();
    let out = s.ok_with(
        &[
            "put",
            "slow",
            "--partition-key",
            "k{n}",
            "--json",
            "--lanes",
            "1",
        ],
        Some(input.as_bytes()),
    );
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["records"], 1000, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert!(summary["retried"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["reordered"], 0);
    let records = s.tail_all("slow", 1000);
    let values: Vec<u64> = records
        .iter()
        .map(|r| r["data"].as_u64().unwrap())
        .collect();
    let mut sorted = values.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..1000).collect::<Vec<_>>(),
        "every record exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_follows_the_children_of_a_split_shard() {
    let s = RealServer::start(&[]);
    s.ok(&["stream", "create", "t", "--shards", "1"]);
    let mut tail = Command::new(BIN)
        .args([
            "tail",
            "t",
            "--from",
            "latest",
            "--format",
            "json",
            "--count",
            "3",
            "--endpoint-url",
            &s.endpoint,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    s.ok(&["put", "t", "before", "--partition-key", "a"]);
    s.ok(&["stream", "split", "t", "shardId-000000000000"]);
    // Explicit hash keys at both ends land one record in each child.
    s.ok(&[
        "put",
        "t",
        "low",
        "--partition-key",
        "a",
        "--explicit-hash-key",
        "1",
    ]);
    let top = (u128::MAX - 1).to_string();
    s.ok(&[
        "put",
        "t",
        "high",
        "--partition-key",
        "a",
        "--explicit-hash-key",
        &top,
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tail.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "tail did not see the children's records"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = tail.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shards: Vec<&str> = lines.iter().map(|l| l["shard"].as_str().unwrap()).collect();
    assert_eq!(lines[0]["text"], "before");
    assert_eq!(shards[0], "shardId-000000000000");
    let mut children = shards[1..].to_vec();
    children.sort();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_reports_throughput_latency_and_its_own_cpu() {
    let s = RealServer::start(&[]);
    s.ok(&["stream", "create", "b", "--shards", "2"]);
    let r = s.json(&[
        "bench",
        "--stream",
        "b",
        "--duration",
        "2",
        "--concurrency",
        "2",
        "--batch",
        "100",
        "--consume",
    ]);
    let records = r["records"].as_u64().unwrap();
    assert!(records > 1000, "{r}");
    assert_eq!(r["consumed"].as_u64(), Some(records), "{r}");
    assert!(r["put_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(r["e2e_latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(r["client_cpu_s"].as_f64().is_some());
    // A fixed rate is held.
    let r = s.json(&[
        "bench",
        "--stream",
        "b",
        "--duration",
        "2",
        "--rate",
        "200",
        "--batch",
        "1",
        "--keys",
        "zipf",
    ]);
    let rate = r["records_per_sec"].as_f64().unwrap();
    assert!((150.0..=210.0).contains(&rate), "{r}");
    assert_eq!(r["requests"], r["records"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_sends_events_in_time_order_with_watermarks_from_gzip_and_lz4() {
    use std::io::Write as _;
    let s = RealServer::start(&[]);
    s.ok(&["stream", "create", "r", "--shards", "2"]);
    let dir = TempDir::new("replay");
    // 20 events one minute apart; at speedup 600 they take about 2 s.
    let text: String = (0..20)
        .map(|i| format!("{{\"type\":\"trip\",\"i\":{i},\"dropoff_datetime\":\"2018-01-01T00:{i:02}:00Z\"}}\n"))
        .collect();
    let gz = dir.path().join("trips.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let started = std::time::Instant::now();
    let summary = s.json(&[
        "replay",
        gz.to_str().unwrap(),
        "--stream",
        "r",
        "--speedup",
        "600",
        "--watermarks",
        "--seek",
        "2018-01-01T00:05:00Z",
    ]);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "paced by the speedup"
    );
    assert_eq!(
        (summary["events"].as_u64(), summary["skipped"].as_u64()),
        (Some(15), Some(5))
    );
    let records = s.tail_all("r", 1000);
    let trips: Vec<u64> = records
        .iter()
        .filter(|r| r["data"]["type"] == "trip")
        .map(|r| r["data"]["i"].as_u64().unwrap())
        .collect();
    let mut sorted = trips.clone();
    sorted.sort();
    assert_eq!(sorted, (5..20).collect::<Vec<_>>());
    // Watermarks went to both shards.
    let marks: Vec<&Value> = records
        .iter()
        .filter(|r| r["data"]["type"] == "watermark")
        .collect();
    assert!(!marks.is_empty());
    let mut shards: Vec<&str> = marks.iter().map(|m| m["shard"].as_str().unwrap()).collect();
    shards.sort();
    shards.dedup();
    assert_eq!(
        shards,
        ["shardId-000000000000", "shardId-000000000001"],
        "{marks:?}"
    );
    // lz4 frames too.
    let lz = dir.path().join("trips.json.lz4");
    let mut enc = lz4_flex::frame::FrameEncoder::new(std::fs::File::create(&lz).unwrap());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    let summary = s.json(&[
        "replay",
        lz.to_str().unwrap(),
        "--stream",
        "r",
        "--speedup",
        "100000",
    ]);
    assert_eq!(summary["events"], 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn gen_writes_the_seed_schemas() {
    let s = RealServer::start(&[]);
    let out = s.ok(&["gen", "tickers", "--count", "5", "--rate", "1000"]);
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(["AAPL", "AMZN", "MSFT", "INTC", "TBV"].contains(&v["TICKER"].as_str().unwrap()));
        let price = v["PRICE"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&price));
        assert!(rivulet::clock::parse_time(v["EVENT_TIME"].as_str().unwrap()).is_some());
    }
    assert_eq!(out.lines().count(), 5);
    s.ok(&["stream", "create", "g", "--shards", "1"]);
    s.ok(&[
        "gen",
        "purchases",
        "--count",
        "20",
        "--rate",
        "1000",
        "--stream",
        "g",
    ]);
    let records = s.tail_all("g", 20);
    assert_eq!(records.len(), 20);
    for r in records {
        let d = &r["data"];
        assert_eq!(r["partitionKey"], d["user_id"]);
        let amount = d["amount"].as_f64().unwrap();
        assert!((10.0..=500.0).contains(&amount));
        assert!(
            ["page_view", "purchase", "click", "login"]
                .contains(&d["event_type"].as_str().unwrap())
        );
    }
}

/// The README's hot-shard walk-through, run as written: the commands of its `sh` block, with
/// `rivulet` on the PATH and AWS_ENDPOINT_URL pointing at the server.
#[tokio::test(flavor = "multi_thread")]
async fn readme_hot_shard_walkthrough() {
    let s = RealServer::start(&[]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## Hot-shard demo")
        .nth(1)
        .expect("the README has the demo");
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let bin_dir = TempDir::new("bin");
    std::os::unix::fs::symlink(BIN, bin_dir.path().join("rivulet")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", &s.endpoint)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two `top` views: before the split shard 0 is hot and the split is proposed; after it
    // the load is spread and nothing is hot.
    let views: Vec<&str> = stdout.split("records/s over the last").skip(1).collect();
    assert_eq!(views.len(), 2, "{stdout}");
    assert!(
        views[0].contains("shardId-000000000000") && views[0].contains("HOT"),
        "{stdout}"
    );
    assert!(
        views[0].contains("rivulet stream split hot-shard-data-stream shardId-000000000000 --hash-key 42535295865117307932921825928971026432"),
        "{stdout}"
    );
    assert!(!views[1].contains("HOT"), "{stdout}");
    assert!(views[1].contains("shardId-000000000004") && views[1].contains("shardId-000000000005"));
}

#[tokio::test(flavor = "multi_thread")]
async fn top_reads_shard_level_metrics_where_the_stream_has_them() {
    let s = RealServer::start(&[]);
    s.ok(&["stream", "create", "m", "--shards", "2"]);
    let kinesis = crate::harness::client(&s.endpoint);
    kinesis
        .enable_enhanced_monitoring()
        .stream_name("m")
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::All)
        .send()
        .await
        .unwrap();
    let one = (u128::MAX / 4).to_string();
    let input: String = (0..30).map(|i| format!("{i}\n")).collect();
    s.ok_with(
        &["put", "m", "--explicit-hash-key", &one],
        Some(input.as_bytes()),
    );
    let view = s.json(&["top", "m", "--once", "--json", "--window", "60"]);
    assert_eq!(view["source"], "metrics", "{view}");
    let shards = view["shards"].as_array().unwrap();
    assert_eq!(shards[0]["records_per_sec"], 0.5, "{view}");
    assert_eq!(shards[0]["share"], 1.0);
    assert_eq!(shards[0]["throttled"], 0.0);
    assert_eq!(shards[0]["hot"], true);
    assert_eq!(shards[1]["hot"], false);
    assert!(
        shards[0]["split_command"]
            .as_str()
            .unwrap()
            .starts_with("rivulet stream split m shardId-000000000000")
    );
}

/// With `--features tls`: the CLI over https, through a TLS-terminating proxy in front of the
/// server, trusting a test CA through AWS_CA_BUNDLE as the AWS CLI does; an unknown CA is
/// refused. Needs `openssl` and `python3`.
#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_speaks_https_and_checks_the_certificate() {
    let s = RealServer::start(&[]);
    let dir = TempDir::new("tls");
    let d = dir.path();
    let sh = |script: &str| {
        Command::new("bash")
            .args(["-c", script])
            .current_dir(d)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success())
    };
    let made = sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -subj /CN=rivulet-test-ca -days 1 \
         && openssl req -newkey rsa:2048 -nodes -keyout leaf-key.pem -out leaf.csr -subj /CN=localhost \
         && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > leaf.ext \
         && openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out leaf.pem -days 1 -extfile leaf.ext",
    );
    assert!(made, "openssl could not make the test certificates");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = s.endpoint.trim_start_matches("http://").to_owned();
    let proxy_script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/clients/tls_proxy.py"
    );
    let mut proxy = Command::new("python3")
        .args([proxy_script, &port.to_string(), &upstream])
        .arg(d.join("leaf.pem"))
        .arg(d.join("leaf-key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(proxy.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let https = format!("https://127.0.0.1:{port}");
    let run = |args: &[&str], ca: bool| {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--endpoint-url", &https])
            .env("RUST_BACKTRACE", "0");
        if ca {
            c.env("AWS_CA_BUNDLE", d.join("ca.pem"));
        } else {
            c.env_remove("AWS_CA_BUNDLE");
        }
        c.output().unwrap()
    };
    let out = run(
        &["stream", "create", "secure", "--shards", "1", "--json"],
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        run(&["put", "secure", "over-tls", "--partition-key", "k"], true)
            .status
            .success()
    );
    let out = run(
        &[
            "tail",
            "secure",
            "--from",
            "trim-horizon",
            "--count",
            "1",
            "--format",
            "json",
        ],
        true,
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["text"], "over-tls");
    // Without the test CA the certificate is not trusted.
    let out = run(&["stream", "list"], false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UnknownIssuer"));
    let _ = proxy.kill();
    let out = proxy.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unsigned"),
        "every request was signed"
    );
}
