#!/usr/bin/env bash
# Resource bounds under clients that hold the server's memory: R slow readers each asking
# for a 10 MiB GetRecords response and reading none of it (4 KiB receive buffers), then U
# slow uploaders each sending a large PutRecords body a little at a time, plus oversized
# bodies (declared and chunked). Measures the server's RSS and the latency of a fresh
# client's PutRecord and small GetRecords meanwhile, and what the server did with each kind.
#
#   bench/slow-clients.sh [READERS] [UPLOADERS] [BINARY]   (default 200, 200, a release build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
readers=${1:-200}
uploaders=${2:-200}
binary=${3:-}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -z "$binary" ]; then
  cargo build --release --bin rivulet
  binary=target/release/rivulet
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$binary" serve --limits off --data-dir "$work/data" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server=$!
sleep 0.5
python3 - "$port" "$readers" "$uploaders" "$server" <<'PY'
import base64, json, socket, sys, time, urllib.error, urllib.request
port, readers, uploaders, server = (int(a) for a in sys.argv[1:5])
AUTH = "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0"

def rss_mib(field="VmRSS"):
    for line in open(f"/proc/{server}/status"):
        if line.startswith(field):
            return round(int(line.split()[1]) / 1024, 1)

def call(op, body, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), headers={
        "X-Amz-Target": f"Kinesis_20131202.{op}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": AUTH})
    try:
        return json.loads(urllib.request.urlopen(req, timeout=timeout).read() or b"{}")
    except urllib.error.HTTPError as e:
        return {"status": e.code, **json.loads(e.read() or b"{}")}

def iterator(shard="shardId-000000000000"):
    return call("GetShardIterator", {"StreamName": "big", "ShardId": shard,
                                     "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]

def fresh_ms(n=20):
    """A fresh client: PutRecord and a one-record GetRecords on the other stream; latency
    of those answered, and how many were refused (503 ServiceUnavailable) instead."""
    put, get, refused = [], [], {}
    def timed(out, op, body):
        t = time.perf_counter()
        r = call(op, body)
        if "status" in r:
            refused[op] = refused.get(op, 0) + 1
            return None
        out.append((time.perf_counter() - t) * 1000)
        return r
    for _ in range(n):
        timed(put, "PutRecord", {"StreamName": "small", "PartitionKey": "k", "Data": "eA=="})
        it = call("GetShardIterator", {"StreamName": "small", "ShardId": "shardId-000000000000",
                                       "ShardIteratorType": "LATEST"})["ShardIterator"]
        timed(get, "GetRecords", {"ShardIterator": it, "Limit": 1})
    out = {}
    for name, xs in (("put", sorted(put)), ("get", sorted(get))):
        if xs:
            out[f"{name}_p50"] = round(xs[len(xs) // 2], 2)
            out[f"{name}_max"] = round(xs[-1], 2)
    if refused:
        out["refused"] = refused
    return out

def raw(head_and_body, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall(head_and_body)
    return s

def post_head(op, length=None, chunked=False):
    h = (f"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.{op}\r\n"
         f"Content-Type: application/x-amz-json-1.1\r\nAuthorization: {AUTH}\r\n")
    h += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n"
    return (h + "\r\n").encode()

def status_of(s, timeout=5):
    s.settimeout(timeout)
    try:
        line = s.recv(64).split(b"\r\n")[0].decode()
        return line.split(" ")[1] if line else "closed"
    except (socket.timeout, TimeoutError):
        return "no answer"
    except OSError:
        return "reset"

call("CreateStream", {"StreamName": "big", "ShardCount": 1})
call("CreateStream", {"StreamName": "small", "ShardCount": 1})
time.sleep(0.5)
# 12 MiB in the big stream: three PutRecords of four records of 1,000,000 bytes.
blob = base64.b64encode(b"x" * 1_000_000).decode()
for _ in range(3):
    r = call("PutRecords", {"StreamName": "big", "Records": [
        {"PartitionKey": str(i), "Data": blob} for i in range(4)]})
    assert r.get("FailedRecordCount") == 0, r
out = {"readers": readers, "uploaders": uploaders, "rss_mib_before": rss_mib(),
       "fresh_ms_before": fresh_ms()}

# Slow readers: a 10 MiB GetRecords each, nothing read.
it = iterator()
body = json.dumps({"ShardIterator": it}).encode()
slow = []
t0 = time.time()
for _ in range(readers):
    slow.append(raw(post_head("GetRecords", len(body)) + body, rcvbuf=4096))
time.sleep(5)
out["slow_readers_open_seconds"] = round(time.time() - t0, 1)
out["rss_mib_with_slow_readers"] = rss_mib()
out["fresh_ms_with_slow_readers"] = fresh_ms()

# Slow uploaders: a 9 MiB PutRecords body announced, 64 KiB sent, then a byte every 2 s.
ups = []
for _ in range(uploaders):
    ups.append(raw(post_head("PutRecords", 9 << 20) + b'{"StreamName":"big","Records":[' + b" " * 65536))
time.sleep(3)
out["rss_mib_with_both"] = rss_mib()
out["fresh_ms_with_both"] = fresh_ms()

# Oversized bodies: declared (Content-Length over the limit) and chunked past it.
declared = raw(post_head("PutRecords", 64 << 20) + b"{")
out["declared_64_mib_body"] = status_of(declared)
chunked = raw(post_head("PutRecords", chunked=True))
sent = 0
try:
    chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
    for _ in range(40):
        chunked.sendall(chunk)
        sent += 1
except OSError:
    pass
out["chunked_body_mib_accepted_before_refusal"] = sent
out["chunked_body_answer"] = status_of(chunked)

# Keep both kinds of slow client alive for 60 s more (a byte every 2 s), then see what the
# server has done with them.
for _ in range(30):
    time.sleep(2)
    for s in ups:
        try:
            s.sendall(b" ")
        except OSError:
            pass
def closed_by_server(socks):
    """How many the server has closed, and the statuses of the answers they got."""
    n, answers = 0, {}
    for s in socks:
        s.setblocking(False)
        first = b""
        try:
            while True:
                d = s.recv(1 << 20)
                if not first:
                    first = d
                if not d:
                    n += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            n += 1
        if first.startswith(b"HTTP/1.1 "):
            status = first.split(b" ")[1].decode()
            answers[status] = answers.get(status, 0) + 1
    return {"closed": n, "answers": answers}
out["rss_mib_after_60s"] = rss_mib()
out["fresh_ms_after_60s"] = fresh_ms()
out["slow_readers_closed_by_server"] = closed_by_server(slow)
out["slow_uploaders_closed_by_server"] = closed_by_server(ups)
for s in slow + ups:
    s.close()
time.sleep(2)
out["rss_mib_after_close"] = rss_mib()
out["peak_rss_mib"] = rss_mib("VmHWM")
print(json.dumps(out))
PY
