#!/usr/bin/env bash
# Side by side, in one run, alternating per workload: Rivulet (release build, fsync on every
# acknowledged batch, --limits off), kinesalite 3.3.3 (in memory, delays 0) and kinesis-local
# 0.6.2 (kinesis-mock on Node, in memory, delays 0), all on loopback, driven by the same
# `rivulet bench` workloads. Also measures this machine's ceilings the same day: sequential
# writes with an fsync per 64 KiB batch, fsyncs per second, and the loopback HTTP ceiling:
# the same `rivulet bench` workloads against `examples/null_server.rs`, a server on Rivulet's
# HTTP stack that answers PutRecord(s) without doing any work (no parsing, no storage, no
# fsync), so each put figure can be read as a fraction of what the client and the HTTP
# exchange allow on these cores.
#
#   bench/peers.sh [SECONDS] [OUT]     (default 5 s per run; the markdown table is printed,
#                                       and also written to OUT when given)
#
# Needs node/npm (the peers install into a temporary directory) and python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-5}
out=${2:-/dev/null}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --bin rivulet --example throughput --example null_server
R=target/release/rivulet
(cd "$work" && npm install --silent --no-audit --no-fund kinesalite@3.3.3 kinesis-local@0.6.2 >/dev/null 2>&1)

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
# Milliseconds until ListStreams answers.
ready_ms() {
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request
start, port = float(sys.argv[1]), sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", headers={
    "X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Date": "20260101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0"})
for _ in range(3000):
    try:
        urllib.request.urlopen(req, timeout=1).read()
        print(round((time.time() - start) * 1000)); sys.exit(0)
    except Exception:
        time.sleep(0.005)
sys.exit("not ready")
PY
}
now() { python3 -c 'import time; print(time.time())'; }

declare -A PORT PID START_MS
t=$(now); PORT[rivulet]=$(port)
$R serve --limits off --data-dir "$work/rivulet-data" --listen "127.0.0.1:${PORT[rivulet]}" 2>"$work/rivulet.log" &
PID[rivulet]=$!; START_MS[rivulet]=$(ready_ms "$t" "${PORT[rivulet]}")
t=$(now); PORT[kinesalite]=$(port)
"$work/node_modules/.bin/kinesalite" --port "${PORT[kinesalite]}" --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 --shardLimit 1000 >"$work/kinesalite.log" 2>&1 &
PID[kinesalite]=$!; START_MS[kinesalite]=$(ready_ms "$t" "${PORT[kinesalite]}")
t=$(now); PORT[kinesis-local]=$(port)
(cd "$work/node_modules/kinesis-local" && KINESIS_MOCK_PLAIN_PORT=${PORT[kinesis-local]} KINESIS_MOCK_TLS_PORT=$(port) \
  CREATE_STREAM_DURATION=0ms DELETE_STREAM_DURATION=0ms UPDATE_SHARD_COUNT_DURATION=0ms \
  SHARD_LIMIT=1000 LOG_LEVEL=ERROR exec node main.js >"$work/kinesis-local.log" 2>&1) &
PID[kinesis-local]=$!; START_MS[kinesis-local]=$(ready_ms "$t" "${PORT[kinesis-local]}")
PEERS=(rivulet kinesalite kinesis-local)
PORT[ceiling]=$(port)
target/release/examples/null_server "${PORT[ceiling]}" 2>"$work/null_server.log" &
PID[ceiling]=$!; START_MS[ceiling]=$(ready_ms "$(now)" "${PORT[ceiling]}" 2>/dev/null || echo 0)

# The machine's ceilings.
fsync_mb_s=$(python3 - "$work/ceiling" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
buf, n, t0 = b"x" * 65536, 0, time.time()
while time.time() - t0 < 3:
    os.write(fd, buf); os.fsync(fd); n += 1
print(round(n * 65536 / (time.time() - t0) / 1e6, 1))
PY
)
fsyncs_s=$(python3 - "$work/ceiling2" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
n, t0 = 0, time.time()
while time.time() - t0 < 3:
    os.write(fd, b"x" * 512); os.fsync(fd); n += 1
print(round(n / (time.time() - t0)))
PY
)

# Workloads: name | bench arguments. Streams have 4 shards.
WORKLOADS=(
  "PutRecords 100 B, 1 producer|--record-size 100 --concurrency 1 --batch 500"
  "PutRecords 100 B, 4 producers|--record-size 100 --concurrency 4 --batch 500"
  "PutRecords 100 B, 16 producers|--record-size 100 --concurrency 16 --batch 500"
  "PutRecords 1 KiB, 1 producer|--record-size 1024 --concurrency 1 --batch 500"
  "PutRecords 1 KiB, 4 producers|--record-size 1024 --concurrency 4 --batch 500"
  "PutRecords 1 KiB, 16 producers|--record-size 1024 --concurrency 16 --batch 500"
  "PutRecord latency, 1 producer|--record-size 100 --concurrency 1 --batch 1"
  "PutRecord latency, 64 producers|--record-size 100 --concurrency 64 --batch 1"
  "produce-to-consume at 1,000 records/s|--record-size 100 --concurrency 4 --batch 10 --rate 1000 --consume"
)
n=0
results="$work/results.jsonl"
for w in "${WORKLOADS[@]}"; do
  name=${w%%|*}; args=${w#*|}
  for peer in "${PEERS[@]}"; do
    n=$((n + 1)); stream="bench-$n"
    ep="http://127.0.0.1:${PORT[$peer]}"
    $R stream create "$stream" --shards 4 --endpoint-url "$ep" >/dev/null
    line=$($R bench --stream "$stream" --duration "$seconds" $args --endpoint-url "$ep" 2>/dev/null | tail -1 || echo '{}')
    python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["peer"]=sys.argv[1]; d["workload"]=sys.argv[2]; print(json.dumps(d))' "$peer" "$name" "$line" >>"$results"
    echo "$peer | $name | $line" >&2
    $R stream delete "$stream" --no-wait --endpoint-url "$ep" >/dev/null 2>&1 || true
  done
  if [[ $name == PutRecord* ]]; then
    line=$($R bench --stream ceiling --duration "$seconds" $args --endpoint-url "http://127.0.0.1:${PORT[ceiling]}" 2>/dev/null | tail -1 || echo '{}')
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d["peer"]="ceiling"; d["workload"]=sys.argv[1]; print(json.dumps(d))' "$name" "$line" >>"$results"
    echo "ceiling | $name | $line" >&2
  fi
done
# GetRecords catch-up over everything a 4-producer PutRecords run wrote (the throughput probe).
for size in 100 1024; do
  for peer in "${PEERS[@]}"; do
    probe=$(target/release/examples/throughput "http://127.0.0.1:${PORT[$peer]}" "$size" 4 "$seconds" 4 2>/dev/null | tail -1 || echo '{}')
    python3 -c 'import json,sys; d=json.loads(sys.argv[3]) if sys.argv[3].startswith("{") else {}; print(json.dumps({"peer": sys.argv[1], "workload": "GetRecords catch-up, %s B" % sys.argv[2], "get": d}))' "$peer" "$size" "$probe" >>"$results"
    echo "$peer | GetRecords $size B | $probe" >&2
  done
done
for peer in "${PEERS[@]}"; do
  rss=$(awk '/VmHWM/ {print $2}' "/proc/${PID[$peer]}/status" 2>/dev/null || echo 0)
  # kinesis-local runs under a subshell; its node process is the child.
  if [[ $peer == kinesis-local ]]; then
    child=$(pgrep -P "${PID[$peer]}" | head -1 || true)
    [[ -n $child ]] && rss=$(awk '/VmHWM/ {print $2}' "/proc/$child/status")
  fi
  echo "{\"peer\": \"$peer\", \"workload\": \"peak RSS\", \"rss_kib\": $rss, \"startup_ms\": ${START_MS[$peer]}}" >>"$results"
done

python3 - "$results" "$out" "$seconds" "$fsync_mb_s" "$fsyncs_s" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
path, out, secs, fsync_mb, fsyncs, cores, cpu = sys.argv[1:8]
rows = [json.loads(l) for l in open(path)]
peers = ["rivulet", "kinesalite", "kinesis-local"]
by = {}
for r in rows:
    by.setdefault(r["workload"], {})[r["peer"]] = r
def fmt(v, unit=""):
    return "–" if v is None else (f"{v:,.0f}{unit}" if v >= 100 else f"{v:.2f}{unit}")
def ratio(a, b, higher=True):
    if not a or not b: return "–"
    return f"{(a / b if higher else b / a):.1f}×"
def pct(a, c, higher=True):
    if not a or not c: return "– | –"
    return f"{fmt(c)} | {(a / c if higher else c / a) * 100:.0f} %"
lines = [f"Machine: {cores} cores, {cpu}. Ceilings measured in the same run: sequential writes with an fsync per 64 KiB: {fsync_mb} MB/s; fsyncs of 512 B: {fsyncs}/s; the HTTP ceiling column is the same workload against `null_server` (Rivulet's HTTP stack answering without doing any work). Each run {secs} s, streams of 4 shards, `rivulet bench` as the client for every peer.", "",
         "| workload | figure | Rivulet | kinesalite | kinesis-local | Rivulet ÷ kinesalite | Rivulet ÷ kinesis-local | HTTP ceiling | Rivulet ÷ ceiling |", "|---|---|---|---|---|---|---|---|---|"]
for w, d in by.items():
    def _get(p, keys):
        v = d.get(p, {})
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v
    if w.startswith("PutRecords"):
        for label, keys, higher in [("records/s", ["records_per_sec"], True), ("MB/s", ["mb_per_sec"], True)]:
            vals = [_get(p, keys) for p in peers]
            lines.append(f"| {w} | {label} | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1], higher)} | {ratio(vals[0], vals[2], higher)} | {pct(vals[0], _get('ceiling', keys), higher)} |")
    elif w.startswith("PutRecord latency"):
        for label, keys in [("p50 ms", ["put_latency_ms", "p50"]), ("p99 ms", ["put_latency_ms", "p99"]), ("records/s", ["records_per_sec"])]:
            vals = [_get(p, keys) for p in peers]
            higher = label == "records/s"
            lines.append(f"| {w} | {label} | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1], higher)} | {ratio(vals[0], vals[2], higher)} | {pct(vals[0], _get('ceiling', keys), higher)} |")
    elif w.startswith("produce-to-consume"):
        for label, keys in [("p50 ms", ["e2e_latency_ms", "p50"]), ("p99 ms", ["e2e_latency_ms", "p99"])]:
            vals = [_get(p, keys) for p in peers]
            lines.append(f"| {w} | {label} | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1], False)} | {ratio(vals[0], vals[2], False)} | – | – |")
    elif w.startswith("GetRecords"):
        for label, keys in [("records/s", ["get", "get_records_per_s"]), ("MB/s", ["get", "get_mb_per_s"])]:
            vals = [_get(p, keys) for p in peers]
            lines.append(f"| {w} | {label} | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1])} | {ratio(vals[0], vals[2])} | – | – |")
    elif w == "peak RSS":
        vals = [(_get(p, ["rss_kib"]) or 0) / 1024 for p in peers]
        lines.append(f"| peak RSS over the run | MiB | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1], False)} | {ratio(vals[0], vals[2], False)} | – | – |")
        vals = [_get(p, ["startup_ms"]) for p in peers]
        lines.append(f"| start-up, empty data | ms to the first answer | " + " | ".join(fmt(v) for v in vals) + f" | {ratio(vals[0], vals[1], False)} | {ratio(vals[0], vals[2], False)} | – | – |")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
