#!/usr/bin/env bash
# Produce-to-consume latency through enhanced fan-out: `rivulet bench` writes timestamped
# records at RATE records/s (the same workload as bench/peers.sh's produce-to-consume row),
# and a boto3 consumer holds a SubscribeToShard on every shard and reports, for each record,
# the time from its send to its arrival in an event.
#
#   bench/efo-latency.sh [SECONDS] [RATE]     (default 20 s at 1,000 records/s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-20}
rate=${2:-1000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --bin rivulet
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet boto3
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
target/release/rivulet serve --limits off --data-dir "$work/data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
sleep 0.5
target/release/rivulet stream create efo --shards 4 >/dev/null
python3 - "$seconds" <<'PY' &
import json, struct, sys, threading, time
import boto3
seconds = float(sys.argv[1])
k = boto3.client("kinesis")
arn = k.describe_stream_summary(StreamName="efo")["StreamDescriptionSummary"]["StreamARN"]
consumer = k.register_stream_consumer(StreamARN=arn, ConsumerName="latency")["Consumer"]["ConsumerARN"]
while k.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
    time.sleep(0.05)
latencies, lock = [], threading.Lock()
deadline = time.time() + seconds + 3
def follow(shard):
    events = k.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard,
                                  StartingPosition={"Type": "LATEST"})["EventStream"]
    for event in events:
        now_us = time.time_ns() // 1000
        for r in event.get("SubscribeToShardEvent", {}).get("Records", []):
            d = r["Data"]
            if d[:4] == b"RVB1":
                with lock:
                    latencies.append((now_us - struct.unpack(">Q", d[4:12])[0]) / 1000)
        if time.time() > deadline:
            return
shards = [s["ShardId"] for s in k.list_shards(StreamName="efo")["Shards"]]
threads = [threading.Thread(target=follow, args=(s,), daemon=True) for s in shards]
for t in threads:
    t.start()
open("/dev/stderr", "w").write("subscribed\n")
for t in threads:
    t.join()
xs = sorted(latencies)
q = lambda p: round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)
print(json.dumps({"consumed": len(xs), "efo_latency_ms": {"p50": q(0.5), "p99": q(0.99), "max": round(xs[-1], 2)}}))
PY
consumer=$!
sleep 2
target/release/rivulet bench --stream efo --duration "$seconds" --record-size 100 --concurrency 4 --batch 10 --rate "$rate" 2>/dev/null | tail -1 > "$work/bench.json"
wait "$consumer"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"produced": d["records"], "put_latency_ms": d["put_latency_ms"]}))' "$work/bench.json"
