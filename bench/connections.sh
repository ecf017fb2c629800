#!/usr/bin/env bash
# Resource bounds under many connections: a release server, N idle connections (connected,
# nothing sent) plus S slowloris clients (a request line and one header byte every 5 s),
# then: the server's RSS, the latency of fresh requests while they are all open, and how
# many slowloris connections the server has closed after its 30 s header deadline.
#
#   bench/connections.sh [IDLE] [SLOWLORIS]     (default 17000 and 2000; the open-file limit
#                                                 must allow both plus the server's files)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
idle=${1:-17000}
slow=${2:-2000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release --bin rivulet
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
target/release/rivulet serve --limits off --data-dir "$work/data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
sleep 0.5
python3 - "$port" "$idle" "$slow" "$server" <<'PY'
import json, socket, sys, threading, time, urllib.request
port, idle, slow, server = (int(a) for a in sys.argv[1:5])

def rss_mib():
    for line in open(f"/proc/{server}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

def request_ms(n=50):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b"{}", headers={
        "X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0"})
    times = []
    for _ in range(n):
        t = time.perf_counter()
        urllib.request.urlopen(req, timeout=10).read()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50": round(times[len(times) // 2], 2), "max": round(times[-1], 2)}

out = {"idle": idle, "slowloris": slow, "rss_mib_before": round(rss_mib(), 1),
       "request_ms_before": request_ms()}
socks, slow_socks = [], []
t0 = time.time()
for i in range(idle):
    socks.append(socket.create_connection(("127.0.0.1", port)))
for i in range(slow):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    slow_socks.append(s)
out["open_seconds"] = round(time.time() - t0, 1)
time.sleep(2)
out["rss_mib_with_all_open"] = round(rss_mib(), 1)
out["request_ms_with_all_open"] = request_ms()
# Slowloris: one more header byte every 5 s, for 40 s (past the 30 s header deadline).
closed = 0
for _ in range(8):
    time.sleep(5)
    for s in slow_socks:
        try:
            s.sendall(b"a")
        except OSError:
            pass
for s in slow_socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
out["slowloris_closed_by_server_after_40s"] = closed
out["rss_mib_after_40s"] = round(rss_mib(), 1)
out["request_ms_after_40s"] = request_ms()
print(json.dumps(out))
PY
