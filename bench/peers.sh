#!/usr/bin/env bash
# Side-by-side throughput: Rivulet (release, fsync on every acknowledged batch, --limits off)
# and kinesalite (npm, in memory, delays 0) run the same throughput probe in one run,
# alternating, on loopback. Prints one JSON line per run, labelled.
#
#   bench/peers.sh [SECONDS]     (default 10 per run)
#
# kinesis-local (kinesis-mock) is not in here yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --bin rivulet --example throughput
(cd "$work" && npm install --silent --no-audit --no-fund kinesalite@3.3.3 >/dev/null)

port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on $1" >&2
  return 1
}

rv_port=$(port)
target/release/rivulet serve --limits off --data-dir "$work/rivulet-data" --listen "127.0.0.1:$rv_port" 2>"$work/rivulet.log" &
kl_port=$(port)
"$work/node_modules/.bin/kinesalite" --port "$kl_port" --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 >"$work/kinesalite.log" 2>&1 &
wait_port "$rv_port"
wait_port "$kl_port"

for workload in "100 4" "1024 4"; do
  set -- $workload
  for peer in rivulet kinesalite; do
    p=$rv_port
    [[ $peer == kinesalite ]] && p=$kl_port
    printf '%s record_bytes=%s concurrency=%s: ' "$peer" "$1" "$2"
    target/release/examples/throughput "http://127.0.0.1:$p" "$1" "$2" "$seconds" 4
  done
done
for peer in rivulet kinesalite; do
  pid=$(pgrep -f "$([[ $peer == rivulet ]] && echo "rivulet serve --limits off" || echo "kinesalite --port $kl_port")" | head -1)
  echo "$peer peak RSS: $(awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status")"
done
