"""What the Python client suites share (test_boto3_cli.py, test_cloudwatch.py): the test
runner, assertions, the AWS CLI, boto3 clients, and servers of their own.

The suites are run as scripts (``python tests/clients/test_X.py ...``), so their own
directory, this one, is first on sys.path and ``import harness`` finds this module.

A suite's ``main()``::

    args = harness.parse_args("what --rivulet-bin is for")  # sets ENDPOINT, AWS_CLI, RIVULET_BIN
    ...  # its boto3 clients on harness.ENDPOINT
    return harness.run("SUITE", globals(), args, cleanup=...)

``run`` calls every top-level ``test_*`` function of the suite in file order (those whose
name contains ``-k SUBSTR``); each prints ``ok NAME (1.23s)`` or ``FAIL NAME: reason``. After
each test it calls ``cleanup()``; at the end it stops the limits-on server (see
``limited_server``). The closing line is ``SUITE: N passed, M failed``; with
``--counts-file PATH`` the counts are also written there as ``N M`` for
scripts/test-clients.sh. The exit status is 1 when anything failed, else 0.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
HALF = 2**127  # first hash key of the second shard of a 2-shard stream
RUN_ID = uuid.uuid4().hex[:6]

ENDPOINT = None  # the shared server (--endpoint), set by parse_args()
AWS_CLI = None  # the `aws` executable, set by parse_args()
RIVULET_BIN = None  # the server binary (--rivulet-bin), set by parse_args()

# The suite's limits-on server once started: proc, root, endpoint, log, kinesis (its boto3
# client), and whatever the suite adds; or error, when it could not be started.
LIMITED = {}


# --------------------------------------------------------------------------- assertions


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def poll(fn, what, timeout=10.0, interval=0.2):
    """Call fn() until it returns something truthy; return it. Fails after `timeout` s with
    the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def expect_error(code, fn, status=None, **kwargs):
    """Call fn(**kwargs), which must fail with error code `code` (and HTTP `status` when
    given); return the message."""
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        message = e.response["Error"].get("Message", "")
        if got != code:
            raise AssertionError(f"expected {code}, got {got}: {message!r}") from None
        if status is not None:
            eq(e.response["ResponseMetadata"]["HTTPStatusCode"], status, f"HTTP status of {code}")
        return message
    raise AssertionError(f"expected {code}, but the call succeeded")


# --------------------------------------------------------------------------- names


def unique(label):
    return f"rv-{RUN_ID}-{label}-{uuid.uuid4().hex[:6]}"


def stream_arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def shard_id(n):
    return f"shardId-{n:012d}"


# --------------------------------------------------------------------------- AWS CLI


def cli_run(service, *args, endpoint=None, max_attempts=None):
    """Run `aws SERVICE ARGS` against --endpoint (or `endpoint`), test credentials unless
    the environment has some. `max_attempts` sets AWS_MAX_ATTEMPTS, e.g. 1 so that the CLI
    does not retry LimitExceededException."""
    cmd = [AWS_CLI, service, *args, "--endpoint-url", endpoint or ENDPOINT,
           "--region", REGION, "--output", "json"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
               AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    if max_attempts is not None:
        env["AWS_MAX_ATTEMPTS"] = str(max_attempts)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def cli(service, *args, **kw):
    """Run `aws SERVICE ARGS`; it must succeed. Returns the parsed JSON output (or None)."""
    proc = cli_run(service, *args, **kw)
    if proc.returncode != 0:
        raise AssertionError(
            f"aws {service} {' '.join(args[:1])} exited {proc.returncode}: "
            f"{proc.stderr.strip()}")
    out = proc.stdout.strip()
    return json.loads(out) if out else None


def cli_error(code, service, *args, **kw):
    """Run `aws SERVICE ARGS`; it must fail with service error `code`. Returns stderr."""
    proc = cli_run(service, *args, **kw)
    check(proc.returncode != 0, f"aws {service} {args[0]} should fail with {code}, exited 0")
    check(f"({code})" in proc.stderr,
          f"aws {service} {args[0]}: expected ({code}) in stderr, got {proc.stderr.strip()!r}")
    return proc.stderr


# --------------------------------------------------------------------------- boto3


def client(service, endpoint, retries=None, **config):
    """A boto3 client with test credentials. By default it makes exactly one attempt per
    call (total_max_attempts=1: botocore's retries `max_attempts` counts retries, so
    max_attempts=1 would still retry throttling once)."""
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries=retries or {"mode": "standard", "total_max_attempts": 1},
                      connect_timeout=5, read_timeout=60, **config))


def wait_active(name, client, timeout=10.0, interval=0.05):
    """Wait until the stream is ACTIVE (LimitExceededException counts as not yet)."""

    def status():
        try:
            return client.describe_stream_summary(StreamName=name)[
                "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        except ClientError as e:
            if e.response["Error"]["Code"] != "LimitExceededException":
                raise
            return False

    poll(status, f"stream {name} ACTIVE", timeout=timeout, interval=interval)


def delete_streams(client, names):
    """Delete the streams in the list `names` (emptying it), consumers and all; errors are
    ignored."""
    while names:
        name = names.pop()
        try:
            client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass


def burst(fn, calls):
    """Make the calls fn(**kwargs) for each kwargs in `calls` at once, one thread each,
    released together. Returns [(response or None, ClientError or None)] in call order."""
    gate = threading.Barrier(len(calls))

    def one(kwargs):
        gate.wait(timeout=30)
        try:
            return fn(**kwargs), None
        except ClientError as e:
            return None, e

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


# --------------------------------------------------------------------------- servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, log_path, *args):
    """Start `RIVULET_BIN serve` on a free loopback port (no RIVULET_* settings from
    outside); wait until it accepts connections. Returns {proc, endpoint, log}."""
    if not RIVULET_BIN:
        raise AssertionError("no server binary: pass --rivulet-bin or set $RIVULET_BIN")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIVULET_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [RIVULET_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
             *args], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    srv = {"proc": proc, "endpoint": f"http://127.0.0.1:{port}", "log": log_path}
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode} at startup: {log_tail(srv)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return srv
        except OSError:
            if time.monotonic() > deadline:
                stop_server(srv)
                raise AssertionError(f"server not accepting connections on {port} after 10s: "
                                     f"{log_tail(srv)}") from None
            time.sleep(0.1)


def stop_server(srv):
    """SIGTERM the server and wait; returns its exit status (None if it had to be killed)."""
    proc = srv["proc"]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def log_tail(srv, lines=20):
    try:
        with open(srv["log"], errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return "(no server log)"


def limited_server(prefix="rivulet-limits-"):
    """The suite's limits-on server (the default `--limits aws`, on a data dir of its own
    under a temporary dir named `prefix`...), started on first use: LIMITED, with its
    kinesis client. `run` stops it when the suite ends."""
    if "proc" in LIMITED:
        return LIMITED
    if "error" in LIMITED:
        raise AssertionError(LIMITED["error"])
    root = tempfile.mkdtemp(prefix=prefix)
    LIMITED["root"] = root
    try:
        srv = start_server(os.path.join(root, "data"), os.path.join(root, "server.log"))
    except AssertionError as e:
        LIMITED["error"] = f"limits-on server: {e}"
        raise AssertionError(LIMITED["error"]) from None
    LIMITED.update(srv)
    print(f"   (limits-on server at {srv['endpoint']}, pid {srv['proc'].pid})", flush=True)
    LIMITED["kinesis"] = client("kinesis", srv["endpoint"], max_pool_connections=32)
    return LIMITED


def stop_limited_server(show_log=False):
    """Stop the limits-on server (if started) and remove its data. Returns False if it
    came up and then exited on its own; its log is shown then, or when show_log."""
    alive = True
    if "proc" in LIMITED:
        alive = LIMITED["proc"].poll() is None
        stop_server(LIMITED)
        if not alive or show_log:
            state = "running" if alive else f"exited {LIMITED['proc'].returncode}"
            print(f"-- limits-on server ({state}), last lines of its log --\n"
                  f"{log_tail(LIMITED)}", flush=True)
    if LIMITED.get("root"):
        shutil.rmtree(LIMITED["root"], ignore_errors=True)
    LIMITED.clear()
    return alive


# --------------------------------------------------------------------------- runner


def parse_args(rivulet_bin_help):
    """The suite's command line: --endpoint (or $RIVULET_ENDPOINT), --counts-file, -k and
    --rivulet-bin (or $RIVULET_BIN). Sets ENDPOINT, RIVULET_BIN and AWS_CLI (the `aws` next
    to this interpreter, or $AWS_CLI), and makes SIGTERM exit through `finally`."""
    global ENDPOINT, AWS_CLI, RIVULET_BIN
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default=os.environ.get("RIVULET_ENDPOINT"))
    parser.add_argument("--counts-file")
    parser.add_argument("-k", dest="filter", default="")
    parser.add_argument("--rivulet-bin", default=os.environ.get("RIVULET_BIN"),
                        help=rivulet_bin_help)
    args = parser.parse_args()
    if not args.endpoint:
        parser.error("--endpoint (or $RIVULET_ENDPOINT) is required")
    ENDPOINT = args.endpoint.rstrip("/")
    RIVULET_BIN = os.path.abspath(args.rivulet_bin) if args.rivulet_bin else None
    # `timeout` stops the suite with SIGTERM: exit through `finally`, which stops the
    # servers of the suite's own.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    AWS_CLI = os.environ.get("AWS_CLI") or os.path.join(os.path.dirname(sys.executable), "aws")
    return args


def run(suite, namespace, args, cleanup, finish=None):
    """Run the top-level test_* functions of `namespace` (a suite's globals()) in file order,
    cleanup() after each; then finish() (if given) and stop the limits-on server. Prints
    `SUITE: N passed, M failed` last; returns the exit status."""
    tests = sorted(
        (f for n, f in namespace.items() if n.startswith("test_") and callable(f)),
        key=lambda f: f.__code__.co_firstlineno)
    tests = [t for t in tests if args.filter in t.__name__]
    passed = failed = 0
    try:
        for t in tests:
            started = time.monotonic()
            try:
                t()
            except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
                failed += 1
                reason = (f"{type(e).__name__}: {e}" if not isinstance(e, AssertionError)
                          else str(e))
                print(f"FAIL {t.__name__}: {reason}", flush=True)
                if not isinstance(e, (AssertionError, ClientError)):
                    traceback.print_exc(limit=3, file=sys.stdout)
            else:
                passed += 1
                print(f"ok {t.__name__} ({time.monotonic() - started:.2f}s)", flush=True)
            finally:
                try:
                    cleanup()
                except Exception as e:  # noqa: BLE001
                    print(f"   (cleanup after {t.__name__} failed: {e})", flush=True)
    finally:
        if finish is not None:
            finish()
        if not stop_limited_server(show_log=failed > 0):
            failed += 1
            print("FAIL limits-on server: it exited during the tests", flush=True)
    print(f"{suite}: {passed} passed, {failed} failed", flush=True)
    if args.counts_file:
        with open(args.counts_file, "w") as f:
            f.write(f"{passed} {failed}\n")
    return 1 if failed else 0
