#!/usr/bin/env bash
# Cost per record against the shard count: one server (--limits off, --fsync always),
# streams of 1, 10, 100, 1,000 and 10,000 shards, and the same `rivulet bench` against each:
# PutRecords of 500 100-byte records with uniform random keys from 4 producers for SECONDS.
# Prints records/s, put latency and the server's CPU time per record for each, and the time
# CreateStream took.
#
#   bench/shards.sh [SECONDS] [BINARY]     (default 5 s, a release build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-5}
bin=${2:-}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$work"' EXIT
if [ -z "$bin" ]; then
  cargo build --release --bin rivulet
  bin=target/release/rivulet
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
"$bin" serve --limits off --shard-limit 20000 --data-dir "$work/data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
sleep 0.5
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
tick=$(getconf CLK_TCK)
for n in 1 10 100 1000 10000; do
  t0=$(date +%s%N)
  "$bin" stream create "s$n" --shards "$n" >/dev/null
  t1=$(date +%s%N)
  c0=$(cpu)
  "$bin" bench --stream "s$n" --duration "$seconds" --concurrency 4 --record-size 100 2>/dev/null | tail -1 >"$work/b.json"
  c1=$(cpu)
  python3 - "$n" "$(( (t1 - t0) / 1000000 ))" "$c0" "$c1" "$tick" "$work/b.json" <<'PY'
import json, sys
n, create_ms, c0, c1, tick, path = sys.argv[1:7]
d = json.load(open(path))
cpu_s = (int(c1) - int(c0)) / int(tick)
print(json.dumps({"shards": int(n), "create_ms": int(create_ms), "records_per_sec": d["records_per_sec"],
                  "put_p50_ms": d["put_latency_ms"]["p50"], "put_p99_ms": d["put_latency_ms"]["p99"],
                  "server_cpu_us_per_record": round(cpu_s * 1e6 / max(d["records"], 1), 2)}))
PY
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^rivulet_fsync' || true
