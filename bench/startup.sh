#!/usr/bin/env bash
# Start-up and memory against the volume stored: fills a data dir with GIB GiB of 1 KiB
# records (4 streams of 4 shards, 16 MiB segments), then restarts the server three times
# with a cold and a warm page cache and reports, each time, the start-up it logs
# (`startup_ms`), the time until it answers ListStreams, and its RSS once serving and after
# reading records of every shard.
#
#   bench/startup.sh [GIB] [DATA_DIR]     (default 10 GiB in a temporary directory; dropping
#                                         the page cache for the cold start needs root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
gib=${1:-10}
data=${2:-}
if [ -z "$data" ]; then
  data=$(mktemp -d /var/tmp/rivulet-startup.XXXXXX)
  trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$data" "$data.log"' EXIT
else
  trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
fi
cargo build --release --bin rivulet
bin=target/release/rivulet
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

serve() {
  RIVULET_LOG=info "$bin" serve --limits off --fsync "$1" --data-dir "$data" --listen "127.0.0.1:$port" 2>"$data.log" &
  server=$!
}

# Fill: --fsync never while filling (the bytes on disk are the same).
serve never
sleep 0.5
for s in 0 1 2 3; do "$bin" stream create "big-$s" --shards 4 >/dev/null 2>&1 || true; done
while [ "$(du -s --block-size=1M "$data/streams" | cut -f1)" -lt $((gib * 1024)) ]; do
  for s in 0 1 2 3; do
    "$bin" bench --stream "big-$s" --duration 10 --record-size 1024 --concurrency 4 >/dev/null 2>&1 &
  done
  wait $(jobs -p | grep -v "^$server$") 2>/dev/null || true
  echo "stored: $(du -sh "$data/streams" | cut -f1)" >&2
done
kill -TERM "$server"; wait "$server" || true

for run in cold warm warm; do
  if [ "$run" = cold ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || run="warm (could not drop caches)"
  fi
  t0=$(date +%s%N)
  serve always
  until "$bin" stream list >/dev/null 2>&1; do sleep 0.005; done
  t1=$(date +%s%N)
  rss_serving=$(grep VmRSS /proc/$server/status | awk '{print $2}')
  # Read the oldest 20,000 records of every stream (every shard).
  for s in 0 1 2 3; do
    timeout 60 "$bin" tail "big-$s" --from trim-horizon --count 20000 --format json >/dev/null 2>&1 || true
  done
  rss_read=$(grep VmRSS /proc/$server/status | awk '{print $2}')
  startup_ms=$(sed 's/\x1b\[[0-9;]*m//g' "$data.log" | grep -o 'startup_ms=[0-9]*' | tail -1 | cut -d= -f2)
  echo "{\"run\": \"$run\", \"stored_gib\": $(du -s --block-size=1M "$data/streams" | cut -f1 | awk '{printf "%.1f", $1/1024}'), \"segments\": $(find "$data/streams" -name '*.seg' | wc -l), \"startup_ms_logged\": $startup_ms, \"first_answer_ms\": $(( (t1 - t0) / 1000000 )), \"rss_mib_serving\": $((rss_serving / 1024)), \"rss_mib_after_reads\": $((rss_read / 1024))}"
  kill -TERM "$server"; wait "$server" || true
done
