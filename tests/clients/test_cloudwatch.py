#!/usr/bin/env python3
"""Rivulet's CloudWatch-compatible API through real AWS clients: boto3 (``cloudwatch`` and
``kinesis``), the AWS CLI (v1) and ``rivulet alarms install-recommended``.

No pytest: the runner of harness.py (shared with test_boto3_cli.py) runs every top-level
``test_*`` function in file order; each prints ``ok NAME`` or ``FAIL NAME: reason``. The
closing line is ``cloudwatch: N passed, M failed``; with ``--counts-file PATH`` the counts
are also written there as ``N M`` for scripts/test-clients.sh.

Usage:
    python test_cloudwatch.py --endpoint http://127.0.0.1:PORT [--counts-file F] [-k SUBSTR]
                              [--rivulet-bin PATH]

botocore speaks CloudWatch's JSON 1.0 protocol (X-Amz-Target
GraniteServiceVersion20100801.*); errors carry x-amzn-query-error, so the clients report
the classic codes (InvalidParameterValue, ResourceNotFound, ...).

The server at --endpoint runs with ``--limits off`` and the real clock. Metrics go into
one-minute buckets (one-second buckets for PutMetricData with StorageResolution 1), and
alarms of 10/20/30 s periods are evaluated at every period boundary, so the tests that
need an evaluation use high-resolution data and 10-second alarms, and poll with deadlines.
Custom data is written at fixed timestamps a few minutes back, so minute boundaries never
split what a test sums; Kinesis metrics are summed over a window of several minutes.

--rivulet-bin (or $RIVULET_BIN) is the server binary: ``alarms install-recommended`` runs
it, and the throttling-metric test starts a second server of its own with the default
``--limits aws`` (stopped, and its data dir removed, when the suite ends).

Alarm actions are received by a small http.server the suite runs on a loopback port.
"""

import datetime
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from botocore.exceptions import ClientError

import harness
from harness import (ACCOUNT, HALF, LIMITED, REGION, RUN_ID, burst, check, client,
                     delete_streams, eq, expect_error, free_port, log_tail, poll, shard_id,
                     start_server, stop_server, stream_arn, unique)

UTC = datetime.timezone.utc

CW = None  # boto3 cloudwatch client, set in main()
CW_RAW = None  # the same without client-side parameter validation
KINESIS = None  # boto3 kinesis client, set in main()

# What the current test created; removed after it.
CREATED_STREAMS = []
CREATED_ALARMS = []
CREATED_DASHBOARDS = []
LIMITED_STREAMS = []

HOOK = {}  # the webhook receiver once started: server, thread, port

# The stream-level AWS/Kinesis metrics a stream has after PutRecord, PutRecords and GetRecords.
STREAM_METRICS = {
    "IncomingBytes", "IncomingRecords",
    "PutRecord.Bytes", "PutRecord.Latency", "PutRecord.Success",
    "PutRecords.Bytes", "PutRecords.Latency", "PutRecords.Success", "PutRecords.Records",
    "PutRecords.SuccessfulRecords", "PutRecords.FailedRecords", "PutRecords.ThrottledRecords",
    "PutRecords.TotalRecords",
    "GetRecords.Bytes", "GetRecords.Records", "GetRecords.Latency", "GetRecords.Success",
    "GetRecords.IteratorAgeMilliseconds",
    "ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded",
}


# --------------------------------------------------------------------------- helpers


def near(actual, expected, what, rel=1e-9):
    if actual is None or not math.isclose(actual, expected, rel_tol=rel, abs_tol=1e-9):
        raise AssertionError(f"{what}: expected {expected!r} (within {rel:.0%}), got {actual!r}")


def namespace(label):
    return f"RivuletTest/{RUN_ID}/{label}-{uuid.uuid4().hex[:6]}"


def alarm_arn(name):
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


def at(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=UTC)


def iso(seconds):
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_minute(minutes_back=10):
    """A minute boundary (epoch seconds) `minutes_back` minutes ago: custom data written
    there is summed in one bucket whatever the clock does during the test."""
    now = int(time.time())
    return now - now % 60 - 60 * minutes_back


def epoch(t):
    return t.timestamp() if isinstance(t, datetime.datetime) else float(t)


def expect_refused(codes, fn, *args, **kwargs):
    """Call fn(*args, **kwargs), which must fail with HTTP 400 and one of `codes`."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got in codes, f"expected one of {codes}, got {got}: {e.response['Error']}")
        eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, f"HTTP status of {got}")
        return
    raise AssertionError(f"expected one of {codes}, but the call succeeded")


def cli(service, *args, **kw):
    """Run `aws SERVICE ARGS` (one attempt); it must succeed. Returns the parsed JSON output
    (or None)."""
    return harness.cli(service, *args, max_attempts=1, **kw)


def cli_error(code, service, *args, **kw):
    """Run `aws SERVICE ARGS` (one attempt); it must fail with service error `code`. Returns
    stderr."""
    return harness.cli_error(code, service, *args, max_attempts=1, **kw)


# ---- streams


def wait_active(name, client=None, timeout=10.0):
    harness.wait_active(name, client or KINESIS, timeout=timeout)


def make_stream(label, shards=1):
    name = unique(label)
    CREATED_STREAMS.append(name)
    KINESIS.create_stream(StreamName=name, ShardCount=shards)
    wait_active(name)
    return name


def read_shard(name, shard=0, client=None):
    client = client or KINESIS
    it = client.get_shard_iterator(StreamName=name, ShardId=shard_id(shard),
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return client.get_records(ShardIterator=it, Limit=10000)


# ---- metrics


def kinesis_dims(stream, shard=None, consumer=None):
    dims = [{"Name": "StreamName", "Value": stream}]
    if shard is not None:
        dims.append({"Name": "ShardId", "Value": shard_id(shard)})
    if consumer is not None:
        dims.append({"Name": "ConsumerName", "Value": consumer})
    return dims


def totals(ns, name, dims, client=None, start=None, end=None, period=60, unit=None):
    """GetMetricStatistics of every statistic over a window of several minutes around now
    (or [start, end)), combined over all datapoints: SampleCount and Sum add up, Minimum and
    Maximum are the extremes. Also `n` (datapoints) and `units` (their Unit values)."""
    now = time.time()
    kwargs = dict(Namespace=ns, MetricName=name, Dimensions=dims,
                  StartTime=at(start if start is not None else now - 300),
                  EndTime=at(end if end is not None else now + 120), Period=period,
                  Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"])
    if unit:
        kwargs["Unit"] = unit
    dps = (client or CW).get_metric_statistics(**kwargs)["Datapoints"]
    out = {"n": len(dps), "units": sorted({d.get("Unit") for d in dps})}
    if dps:
        out.update(SampleCount=sum(d["SampleCount"] for d in dps), Sum=sum(d["Sum"] for d in dps),
                   Minimum=min(d["Minimum"] for d in dps), Maximum=max(d["Maximum"] for d in dps))
    else:
        out.update(SampleCount=0, Sum=0)
    return out


def expect_totals(ns, name, dims, want, client=None, timeout=3.0, **kw):
    """Wait (briefly) until the combined statistics hold `want` (a dict of the keys of
    `totals`), then check them; returns the totals."""
    def matches():
        t = totals(ns, name, dims, client=client, **kw)
        return t if all(t.get(k) == v for k, v in want.items()) else None

    try:
        return poll(matches, "", timeout=timeout, interval=0.2)
    except AssertionError:
        t = totals(ns, name, dims, client=client, **kw)
        wrong = {k: (v, t.get(k)) for k, v in want.items() if t.get(k) != v}
        dim_text = ",".join(f"{d['Name']}={d['Value']}" for d in dims)
        raise AssertionError(f"{ns} {name} [{dim_text}]: (expected, got) {wrong}; all: {t}") \
            from None


def sorted_points(dps):
    return sorted(dps, key=lambda d: epoch(d["Timestamp"]))


def metric_names(ns, dims):
    metrics = CW.list_metrics(Namespace=ns, Dimensions=dims)["Metrics"]
    return sorted(m["MetricName"] for m in metrics)


# ---- alarms


def put_alarm(name=None, label="alarm", **kwargs):
    """PutMetricAlarm with defaults (a 60 s Maximum > 5 alarm on an unused metric, missing
    data ignored, so no evaluation changes its state); returns the name."""
    name = name or unique(label)
    if name not in CREATED_ALARMS:
        CREATED_ALARMS.append(name)
    args = dict(AlarmName=name, Namespace="RivuletTest/unused", MetricName="unused",
                Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=5.0,
                ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    if "Metrics" in kwargs:
        for k in ("Namespace", "MetricName", "Statistic", "Period"):
            args.pop(k)
    args.update(kwargs)
    CW.put_metric_alarm(**args)
    return name


def alarm(name):
    found = CW.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    eq(len(found), 1, f"DescribeAlarms of {name}")
    return found[0]


def wait_state(name, state, timeout=15.0):
    return poll(lambda: (lambda a: a if a["StateValue"] == state else None)(alarm(name)),
                f"alarm {name} in {state}", timeout=timeout, interval=0.25)


def history(name, **kwargs):
    return CW.describe_alarm_history(AlarmName=name, **kwargs)["AlarmHistoryItems"]


def wait_history(name, predicate, what, timeout=10.0):
    return poll(lambda: [h for h in history(name) if predicate(h)], what, timeout=timeout,
                interval=0.2)


def cleanup():
    if CREATED_ALARMS:
        names = list(CREATED_ALARMS)
        CREATED_ALARMS.clear()
        existing = [a["AlarmName"] for a in CW.describe_alarms(AlarmNames=names)["MetricAlarms"]]
        if existing:
            CW.delete_alarms(AlarmNames=existing)
    while CREATED_DASHBOARDS:
        name = CREATED_DASHBOARDS.pop()
        try:
            CW.delete_dashboards(DashboardNames=[name])
        except ClientError:
            pass
    delete_streams(KINESIS, CREATED_STREAMS)
    delete_streams(LIMITED.get("kinesis"), LIMITED_STREAMS)


# ---- webhook receiver


class HookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with HOOK["cond"]:
            HOOK["posts"].append({"path": self.path, "headers": dict(self.headers.items()),
                                  "body": body})
            HOOK["cond"].notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def hook_url(path):
    """The URL of the suite's webhook receiver for `path` (started on first use)."""
    if "server" not in HOOK:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HookHandler)
        server.daemon_threads = True
        HOOK.update(server=server, port=server.server_address[1], posts=[],
                    cond=threading.Condition())
        HOOK["thread"] = threading.Thread(target=server.serve_forever, daemon=True)
        HOOK["thread"].start()
    return f"http://127.0.0.1:{HOOK['port']}{path}"


def hook_posts(path):
    with HOOK["cond"]:
        return [p for p in HOOK["posts"] if p["path"] == path]


def wait_posts(path, n, timeout=10.0):
    """Wait until `path` received at least n POSTs; return them all."""
    deadline = time.monotonic() + timeout
    with HOOK["cond"]:
        while True:
            got = [p for p in HOOK["posts"] if p["path"] == path]
            if len(got) >= n:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"webhook {path}: {len(got)} POSTs within {timeout:.0f}s, "
                                     f"expected {n}")
            HOOK["cond"].wait(left)


def stop_hook():
    if "server" in HOOK:
        HOOK["server"].shutdown()
        HOOK["server"].server_close()
    HOOK.clear()


# ---- the limits-on server


def limited_server():
    """(kinesis, cloudwatch) clients of the suite's limits-on server, started on first use."""
    srv = harness.limited_server("rivulet-cw-limits-")
    if "cw" not in srv:
        srv["cw"] = client("cloudwatch", srv["endpoint"])
    return srv["kinesis"], srv["cw"]


def retry_limited(fn, timeout=10.0, **kwargs):
    """Call fn(**kwargs), retrying LimitExceededException (control-plane rates) for a while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(**kwargs)
        except ClientError as e:
            if e.response["Error"]["Code"] != "LimitExceededException" \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# --------------------------------------------------------------------------- PutMetricData and statistics


def test_put_metric_data_values_and_statistics():
    ns = namespace("values")
    base = base_minute()
    dims = [{"Name": "Host", "Value": "a"}]
    CW.put_metric_data(Namespace=ns, MetricData=[
        *({"MetricName": "latency", "Dimensions": dims, "Value": v, "Unit": "Milliseconds",
           "Timestamp": at(base + 5 + v)} for v in (1.0, 2.0, 3.0, 4.0)),
        {"MetricName": "latency", "Dimensions": dims, "Value": 10.0, "Unit": "Milliseconds",
         "Timestamp": at(base + 65)},
    ])
    out = CW.get_metric_statistics(
        Namespace=ns, MetricName="latency", Dimensions=dims, StartTime=at(base - 60),
        EndTime=at(base + 180), Period=60,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"])
    eq(out["Label"], "latency", "Label")
    dps = sorted_points(out["Datapoints"])
    eq([epoch(d["Timestamp"]) for d in dps], [base, base + 60], "datapoint timestamps")
    for d, want in zip(dps, [(4, 10, 2.5, 1, 4), (1, 10, 10, 10, 10)]):
        got = (d["SampleCount"], d["Sum"], d["Average"], d["Minimum"], d["Maximum"])
        eq(got, tuple(float(x) for x in want), f"statistics at {iso(epoch(d['Timestamp']))}")
        eq(d["Unit"], "Milliseconds", "Unit")
    # One five-minute period holds both minutes.
    t = totals(ns, "latency", dims, start=base - 120, end=base + 180, period=300)
    eq((t["SampleCount"], t["Sum"], t["Minimum"], t["Maximum"]), (5, 20, 1, 10),
       "statistics over 5-minute periods")
    # Other dimensions are other metrics.
    for other in ([], [{"Name": "Host", "Value": "b"}],
                  dims + [{"Name": "Az", "Value": "z"}]):
        eq(totals(ns, "latency", other, start=base - 60, end=base + 180)["n"], 0,
           f"datapoints with dimensions {other}")


def test_put_metric_data_statistic_sets_and_value_arrays():
    ns = namespace("sets")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "set", "Timestamp": at(base + 1), "Unit": "Count",
         "StatisticValues": {"SampleCount": 4, "Sum": 100, "Minimum": 10, "Maximum": 40}},
        {"MetricName": "counted", "Timestamp": at(base + 2), "Unit": "Count",
         "Values": [1, 2, 3], "Counts": [1, 2, 3]},
        {"MetricName": "uncounted", "Timestamp": at(base + 3), "Values": [5, 7]},
    ])
    window = dict(start=base - 60, end=base + 120)
    t = totals(ns, "set", [], **window)
    eq((t["n"], t["SampleCount"], t["Sum"], t["Minimum"], t["Maximum"]), (1, 4, 100, 10, 40),
       "StatisticValues: datapoints, SampleCount, Sum, Minimum, Maximum")
    t = totals(ns, "counted", [], **window)
    eq((t["n"], t["SampleCount"], t["Sum"], t["Minimum"], t["Maximum"]), (1, 6, 14, 1, 3),
       "Values [1,2,3] with Counts [1,2,3]")
    eq(t["units"], ["Count"], "Unit of Values")
    t = totals(ns, "uncounted", [], **window)
    eq((t["SampleCount"], t["Sum"], t["Minimum"], t["Maximum"]), (2, 12, 5, 7),
       "Values without Counts count once each")
    eq(t["units"], ["None"], "Unit when none was given")


def test_percentiles():
    ns = namespace("pct")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "lat", "Timestamp": at(base + 7),
         "Values": [float(v) for v in range(k * 100 + 1, k * 100 + 101)]}
        for k in range(10)])
    out = CW.get_metric_statistics(
        Namespace=ns, MetricName="lat", StartTime=at(base), EndTime=at(base + 60), Period=60,
        Statistics=["SampleCount", "Sum"], ExtendedStatistics=["p50", "p90", "p99", "p99.9"])
    dps = out["Datapoints"]
    eq(len(dps), 1, "datapoints")
    eq((dps[0]["SampleCount"], dps[0]["Sum"]), (1000.0, 500500.0), "SampleCount, Sum")
    ext = dps[0].get("ExtendedStatistics", {})
    for p, want in (("p50", 500), ("p90", 900), ("p99", 990), ("p99.9", 999)):
        near(ext.get(p), want, f"{p} of 1..1000", rel=0.02)
    out = CW.get_metric_data(StartTime=at(base), EndTime=at(base + 60), MetricDataQueries=[
        {"Id": "p", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "lat"},
                                   "Period": 60, "Stat": "p90"}}])
    r = out["MetricDataResults"][0]
    eq(len(r["Values"]), 1, "GetMetricData p90 values")
    near(r["Values"][0], 900, "GetMetricData p90", rel=0.02)
    expect_error("InvalidParameterValue", CW.get_metric_statistics, Namespace=ns,
                 MetricName="lat", StartTime=at(base), EndTime=at(base + 60), Period=60,
                 ExtendedStatistics=["p101"])


def test_put_metric_data_gzip_body():
    """botocore gzip-compresses PutMetricData bodies of 10 KiB or more (the operation's
    requestcompression trait; CloudWatch takes `Content-Encoding: gzip`): 1,000 data in one
    call, as a client batching its metrics sends them."""
    ns = namespace("gzip")
    base = base_minute()
    sent = []

    def note(request, **_):
        sent.append(request.headers.get("Content-Encoding"))

    CW.meta.events.register("before-send.cloudwatch.PutMetricData", note)
    try:
        CW.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "batched", "Value": float(i % 10), "Unit": "Count",
             "Timestamp": at(base + 1 + i % 50),
             "Dimensions": [{"Name": "Worker", "Value": f"w{i % 4}"}]} for i in range(1000)])
    finally:
        CW.meta.events.unregister("before-send.cloudwatch.PutMetricData", note)
    eq(sent, [b"gzip"], "Content-Encoding of the request botocore sent")
    for w in range(4):
        t = totals(ns, "batched", [{"Name": "Worker", "Value": f"w{w}"}], start=base - 60,
                   end=base + 120)
        eq((t["n"], t["SampleCount"], t["Sum"]), (1, 250, sum(i % 10 for i in range(w, 1000, 4))),
           f"worker w{w}: datapoints, SampleCount, Sum")


def test_unit_filter():
    ns = namespace("units")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "size", "Value": 512, "Unit": "Bytes", "Timestamp": at(base + 1)}])
    window = dict(start=base - 60, end=base + 120)
    t = totals(ns, "size", [], unit="Bytes", **window)
    eq((t["n"], t["Sum"], t["units"]), (1, 512, ["Bytes"]), "Unit=Bytes")
    eq(totals(ns, "size", [], unit="Count", **window)["n"], 0, "datapoints with Unit=Count")
    eq(totals(ns, "size", [], **window)["units"], ["Bytes"], "Unit without a filter")


def test_unit_filter_with_mixed_units():
    """One metric written with two units: "If you specify a unit, the operation returns only
    data that was collected with that unit specified"; without a unit, all data comes back
    with the units it was reported with (GetMetricStatistics Unit, CloudWatch API)."""
    ns = namespace("mixed")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "m", "Value": 1.0, "Unit": "Count", "Timestamp": at(base + 1)},
        {"MetricName": "m", "Value": 5.0, "Unit": "Seconds", "Timestamp": at(base + 2)}])
    window = dict(start=base - 60, end=base + 120)
    t = totals(ns, "m", [], unit="Count", **window)
    eq((t["SampleCount"], t["Sum"], t["units"]), (1, 1, ["Count"]), "Unit=Count")
    t = totals(ns, "m", [], unit="Seconds", **window)
    eq((t["SampleCount"], t["Sum"], t["units"]), (1, 5, ["Seconds"]), "Unit=Seconds")
    t = totals(ns, "m", [], **window)
    eq((t["SampleCount"], t["Sum"], t["units"]), (2, 6, ["Count", "Seconds"]), "no Unit")


def test_high_resolution_periods():
    ns = namespace("hires")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "hr", "Value": v, "StorageResolution": 1, "Timestamp": at(base + s)}
        for s, v in ((1, 1.0), (2, 2.0), (12, 4.0))])
    out = CW.get_metric_statistics(Namespace=ns, MetricName="hr", StartTime=at(base),
                                   EndTime=at(base + 60), Period=1, Statistics=["Sum"])
    eq([(epoch(d["Timestamp"]) - base, d["Sum"]) for d in sorted_points(out["Datapoints"])],
       [(1, 1.0), (2, 2.0), (12, 4.0)], "1-second periods (offset, Sum)")
    out = CW.get_metric_statistics(Namespace=ns, MetricName="hr", StartTime=at(base),
                                   EndTime=at(base + 60), Period=10,
                                   Statistics=["Sum", "SampleCount"])
    eq([(epoch(d["Timestamp"]) - base, d["Sum"], d["SampleCount"])
        for d in sorted_points(out["Datapoints"])],
       [(0, 3.0, 2.0), (10, 4.0, 1.0)], "10-second periods (offset, Sum, SampleCount)")
    t = totals(ns, "hr", [], start=base, end=base + 60)
    eq((t["n"], t["Sum"], t["SampleCount"]), (1, 7, 3), "one 60-second period")


def test_statistics_unchanged_by_flush_and_late_data_merges():
    """Buckets are written to the metric log on the server's next tick: what a query
    returns before and after is the same, and data written later into a flushed bucket adds
    to it."""
    ns = namespace("flush")
    base = base_minute(5)
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "m", "Value": 2.0, "Timestamp": at(base + 3)},
        {"MetricName": "m", "Value": 5.0, "Timestamp": at(base + 4)},
        {"MetricName": "hr", "Value": 7.0, "StorageResolution": 1, "Timestamp": at(base + 5)}])
    window = dict(start=base - 60, end=base + 120)
    want = {"n": 1, "SampleCount": 2, "Sum": 7, "Minimum": 2, "Maximum": 5}
    expect_totals(ns, "m", [], want, **window)
    expect_totals(ns, "hr", [], {"n": 1, "SampleCount": 1, "Sum": 7}, period=1, **window)
    time.sleep(2.2)  # two ticks: both buckets are in the log now
    expect_totals(ns, "m", [], want, timeout=0, **window)
    expect_totals(ns, "hr", [], {"n": 1, "SampleCount": 1, "Sum": 7}, period=1, timeout=0,
                  **window)
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "m", "Value": 1.0, "Timestamp": at(base + 30)},
        {"MetricName": "hr", "Value": 3.0, "StorageResolution": 1, "Timestamp": at(base + 5)}])
    expect_totals(ns, "m", [], {"n": 1, "SampleCount": 3, "Sum": 8, "Minimum": 1, "Maximum": 5},
                  **window)
    expect_totals(ns, "hr", [], {"n": 1, "SampleCount": 2, "Sum": 10}, period=1, **window)


def test_put_metric_data_errors():
    ns = namespace("errors")
    now = int(time.time())

    def put(**datum):
        return CW.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "m", **datum}])

    expect_error("InvalidParameterValue", CW.put_metric_data, status=400,
                 Namespace="AWS/Kinesis", MetricData=[{"MetricName": "m", "Value": 1}])
    expect_error("InvalidParameterValue", CW.put_metric_data,
                 Namespace="AWS/MyApp", MetricData=[{"MetricName": "m", "Value": 1}])
    dims30 = [{"Name": f"d{i:02d}", "Value": "v"} for i in range(30)]
    put(Value=1, Dimensions=dims30)
    eq(totals(ns, "m", dims30)["Sum"], 1, "a datum with 30 dimensions")
    expect_error("InvalidParameterValue", put, Value=1,
                 Dimensions=dims30 + [{"Name": "d30", "Value": "v"}])
    expect_error("InvalidParameterValue", put, Value=1, StorageResolution=5)
    expect_error("InvalidParameterValue", put, Value=1, Timestamp=at(now - 15 * 86400))
    expect_error("InvalidParameterValue", put, Value=1, Timestamp=at(now + 3 * 3600))
    put(Value=2, Timestamp=at(now - 13 * 86400))
    put(Value=3, Timestamp=at(now + 3600))
    expect_error("InvalidParameterValue", put, Value=1, Unit="Parsecs")
    expect_error("InvalidParameterCombination", put, Value=1,
                 StatisticValues={"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1})
    try:
        put(Values=[1, 2], Counts=[1])
        raise AssertionError("Values [1,2] with Counts [1] was accepted")
    except ClientError as e:
        check(e.response["Error"]["Code"] in ("InvalidParameterValue",
                                              "InvalidParameterCombination"),
              f"Values/Counts of different sizes: {e.response['Error']}")
    # A call with one bad datum stores none of its data.
    expect_error("InvalidParameterValue", CW.put_metric_data, Namespace=ns, MetricData=[
        {"MetricName": "kept-out", "Value": 1},
        {"MetricName": "kept-out", "Value": 1, "StorageResolution": 7}])
    eq(CW.list_metrics(Namespace=ns, MetricName="kept-out")["Metrics"], [],
       "metrics of a refused call")


def test_get_metric_statistics_errors():
    ns = namespace("gmserr")
    now = int(time.time())
    CW.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1}])

    def gms(start, end, period=60, **kw):
        return CW.get_metric_statistics(Namespace=ns, MetricName="m", StartTime=at(start),
                                        EndTime=at(end), Period=period,
                                        **({"Statistics": ["Sum"]} | kw))

    gms(now - 86400, now, 60)  # exactly 1,440 datapoints
    msg = expect_error("InvalidParameterCombination", gms, start=now - 2 * 86400, end=now,
                       period=60)
    check("1440" in msg.replace(",", ""), f"the message should name the limit: {msg!r}")
    expect_error("InvalidParameterValue", gms, start=now, end=now)
    expect_error("InvalidParameterValue", gms, start=now, end=now - 60)
    for period in (1, 5, 10, 20, 30, 60, 120, 3600):
        gms(now - 600, now, period)
    for period in (7, 45, 90):
        expect_error("InvalidParameterValue", gms, start=now - 600, end=now, period=period)
    expect_error("InvalidParameterValue", gms, start=now - 600, end=now,
                 Statistics=["Median"])
    expect_error("MissingParameter", CW_RAW.get_metric_statistics, Namespace=ns,
                 StartTime=at(now - 600), EndTime=at(now), Period=60, Statistics=["Sum"])


# --------------------------------------------------------------------------- GetMetricData and ListMetrics


def test_get_metric_data_queries_and_expressions():
    ns = namespace("gmd")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": name, "Value": v * k, "StorageResolution": 1, "Timestamp": at(base + off)}
        for name, k in (("a", 1), ("b", 10)) for off, v in ((1, 1.0), (11, 2.0), (21, 3.0))])

    def stat(name):
        return {"Metric": {"Namespace": ns, "MetricName": name}, "Period": 10, "Stat": "Sum"}

    queries = [
        {"Id": "m1", "MetricStat": stat("a"), "Label": "first"},
        {"Id": "m2", "MetricStat": stat("b"), "ReturnData": False},
        {"Id": "e1", "Expression": "m1*2", "Label": "doubled"},
        {"Id": "e2", "Expression": "SUM(METRICS())", "Label": "total"},
        {"Id": "e3", "Expression": "RATE(m1)", "Label": "rate"},
    ]
    out = CW.get_metric_data(MetricDataQueries=queries, StartTime=at(base),
                             EndTime=at(base + 30))
    results = out["MetricDataResults"]
    eq([r["Id"] for r in results], ["m1", "e1", "e2", "e3"], "result ids (ReturnData false left out)")
    by_id = {r["Id"]: r for r in results}
    desc = [base + 20, base + 10, base]
    for rid, label, ts, values in (("m1", "first", desc, [3, 2, 1]),
                                   ("e1", "doubled", desc, [6, 4, 2]),
                                   ("e2", "total", desc, [33, 22, 11])):
        r = by_id[rid]
        eq(r["Label"], label, f"{rid} Label")
        eq([epoch(t) for t in r["Timestamps"]], ts, f"{rid} Timestamps (newest first)")
        eq(r["Values"], [float(v) for v in values], f"{rid} Values")
        eq(r["StatusCode"], "Complete", f"{rid} StatusCode")
    r = by_id["e3"]
    eq([epoch(t) for t in r["Timestamps"]], desc[:2], "RATE(m1) Timestamps")
    eq(len(r["Values"]), 2, "RATE(m1) values")
    for v in r["Values"]:
        near(v, 0.1, "RATE(m1): 1 per 10 s")
    # Ascending order.
    out = CW.get_metric_data(MetricDataQueries=queries[:1], StartTime=at(base),
                             EndTime=at(base + 30), ScanBy="TimestampAscending")
    r = out["MetricDataResults"][0]
    eq([epoch(t) for t in r["Timestamps"]], [base, base + 10, base + 20],
       "TimestampAscending Timestamps")
    eq(r["Values"], [1.0, 2.0, 3.0], "TimestampAscending Values")
    # A label defaults to the metric name.
    out = CW.get_metric_data(MetricDataQueries=[{"Id": "x", "MetricStat": stat("b")}],
                             StartTime=at(base), EndTime=at(base + 30))
    eq(out["MetricDataResults"][0]["Label"], "b", "default Label of a MetricStat query")
    # No data in the range: an empty, complete result.
    out = CW.get_metric_data(MetricDataQueries=queries[:1], StartTime=at(base + 40),
                             EndTime=at(base + 60))
    r = out["MetricDataResults"][0]
    eq((r["Timestamps"], r["Values"], r["StatusCode"]), ([], [], "Complete"),
       "a range without data")
    # Errors.
    expect_error("ValidationError", CW.get_metric_data, StartTime=at(base),
                 EndTime=at(base + 30),
                 MetricDataQueries=[queries[0], {"Id": "e9", "Expression": "nope*2"}])
    expect_refused(("InvalidParameterValue", "ValidationError"), CW.get_metric_data,
                   StartTime=at(base + 30), EndTime=at(base), MetricDataQueries=queries[:1])
    expect_error("InvalidNextToken", CW.get_metric_data, StartTime=at(base),
                 EndTime=at(base + 30), MetricDataQueries=queries[:1], NextToken="bogus")


def test_get_metric_data_max_datapoints_pages():
    """MaxDatapoints caps a response; a MetricStat result cut short is PartialData and the
    response's NextToken brings the rest (the API reference of MetricDataResult)."""
    ns = namespace("gmdpage")
    base = base_minute()
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "a", "Value": v, "StorageResolution": 1, "Timestamp": at(base + off)}
        for off, v in ((1, 1.0), (11, 2.0), (21, 3.0))])
    q = [{"Id": "m1", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "a"},
                                     "Period": 10, "Stat": "Sum"}}]
    out = CW.get_metric_data(MetricDataQueries=q, StartTime=at(base), EndTime=at(base + 30),
                             MaxDatapoints=2)
    r = out["MetricDataResults"][0]
    eq(r["Values"], [3.0, 2.0], "first page (MaxDatapoints 2)")
    eq(r["StatusCode"], "PartialData", "StatusCode of a cut result")
    check(out.get("NextToken"),
          "a PartialData MetricStat result must come with a NextToken for the rest; "
          f"got none (response keys {sorted(k for k in out if k != 'ResponseMetadata')})")
    out = CW.get_metric_data(MetricDataQueries=q, StartTime=at(base), EndTime=at(base + 30),
                             MaxDatapoints=2, NextToken=out["NextToken"])
    r = out["MetricDataResults"][0]
    eq(r["Values"], [1.0], "second page")
    eq(r["StatusCode"], "Complete", "StatusCode of the last page")


def test_list_metrics_filters():
    ns = namespace("list")
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "a", "Value": 1, "Dimensions": [{"Name": "Host", "Value": "h1"}]},
        {"MetricName": "a", "Value": 1, "Dimensions": [{"Name": "Host", "Value": "h2"}]},
        {"MetricName": "b", "Value": 1, "Dimensions": [{"Name": "Host", "Value": "h1"},
                                                         {"Name": "Az", "Value": "z1"}]},
        {"MetricName": "c", "Value": 1},
    ])

    def listed(**kw):
        out = CW.list_metrics(Namespace=ns, **kw)
        check("NextToken" not in out, f"a page of 4 metrics has no NextToken: {out}")
        for m in out["Metrics"]:
            eq(m["Namespace"], ns, "Namespace of a listed metric")
        return sorted((m["MetricName"], tuple(sorted((d["Name"], d["Value"])
                                                     for d in m.get("Dimensions", []))))
                      for m in out["Metrics"])

    a1, a2 = ("a", (("Host", "h1"),)), ("a", (("Host", "h2"),))
    b, c = ("b", (("Az", "z1"), ("Host", "h1"))), ("c", ())
    eq(listed(), [a1, a2, b, c], "the namespace")
    eq(listed(MetricName="a"), [a1, a2], "MetricName a")
    eq(listed(Dimensions=[{"Name": "Host"}]), [a1, a2, b], "dimension Host (any value)")
    eq(listed(Dimensions=[{"Name": "Host", "Value": "h1"}]), [a1, b], "dimension Host=h1")
    eq(listed(Dimensions=[{"Name": "Host", "Value": "h1"}, {"Name": "Az"}]), [b],
       "dimensions Host=h1 and Az")
    eq(listed(MetricName="a", Dimensions=[{"Name": "Az"}]), [], "a with dimension Az")
    eq(listed(RecentlyActive="PT3H"), [a1, a2, b, c], "RecentlyActive PT3H")
    eq(CW.list_metrics(Namespace=namespace("none"))["Metrics"], [], "an unused namespace")


def test_list_metrics_pages_of_500():
    ns = namespace("pages")
    for chunk in (range(0, 251), range(251, 501)):  # two calls, each under 10 KiB
        CW.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": f"m{i:03d}", "Value": 1.0} for i in chunk])
    page = CW.list_metrics(Namespace=ns)
    eq(len(page["Metrics"]), 500, "metrics on the first page")
    check(page.get("NextToken"), "a first page of 500 of 501 metrics has a NextToken")
    rest = CW.list_metrics(Namespace=ns, NextToken=page["NextToken"])
    eq(len(rest["Metrics"]), 1, "metrics on the second page")
    check("NextToken" not in rest, "the last page has no NextToken")
    names = {m["MetricName"] for m in page["Metrics"] + rest["Metrics"]}
    eq(names, {f"m{i:03d}" for i in range(501)}, "metrics over both pages")
    listed = [m for p in CW.get_paginator("list_metrics").paginate(Namespace=ns)
              for m in p["Metrics"]]
    eq(len(listed), 501, "metrics through the boto3 paginator")


# --------------------------------------------------------------------------- AWS/Kinesis metrics


def test_kinesis_stream_metrics():
    name = make_stream("metrics")
    KINESIS.put_record(StreamName=name, Data=b"hello", PartitionKey="pk")  # 7 bytes
    out = KINESIS.put_records(StreamName=name, Records=[
        {"Data": b"abc", "PartitionKey": "k1"},  # 5
        {"Data": b"defgh", "PartitionKey": "k2"},  # 7
        {"Data": b"ij", "PartitionKey": "key3"},  # 6
    ])
    eq(out["FailedRecordCount"], 0, "FailedRecordCount")
    first = read_shard(name)
    eq(len(first["Records"]), 4, "records read")
    it = first["NextShardIterator"]
    eq(KINESIS.get_records(ShardIterator=it)["Records"], [], "second GetRecords")
    ns, dims = "AWS/Kinesis", kinesis_dims(name)
    want = {
        "IncomingBytes": {"Sum": 25, "SampleCount": 2, "units": ["Bytes"]},
        "IncomingRecords": {"Sum": 4, "SampleCount": 2, "units": ["Count"]},
        "PutRecord.Bytes": {"Sum": 7, "SampleCount": 1, "units": ["Bytes"]},
        "PutRecord.Success": {"Sum": 1, "SampleCount": 1},
        "PutRecord.Latency": {"SampleCount": 1, "units": ["Milliseconds"]},
        "PutRecords.Bytes": {"Sum": 18, "SampleCount": 1, "units": ["Bytes"]},
        "PutRecords.Records": {"Sum": 3, "SampleCount": 1},
        "PutRecords.Success": {"Sum": 1, "SampleCount": 1},
        "PutRecords.Latency": {"SampleCount": 1, "units": ["Milliseconds"]},
        "PutRecords.TotalRecords": {"Sum": 3, "SampleCount": 1},
        "PutRecords.SuccessfulRecords": {"Sum": 3, "SampleCount": 1},
        "PutRecords.FailedRecords": {"Sum": 0, "SampleCount": 1},
        "PutRecords.ThrottledRecords": {"Sum": 0, "SampleCount": 1},
        "GetRecords.Records": {"Sum": 4, "SampleCount": 2, "Maximum": 4, "Minimum": 0},
        "GetRecords.Bytes": {"Sum": 25, "SampleCount": 2, "units": ["Bytes"]},
        "GetRecords.Success": {"Sum": 2, "SampleCount": 2},
        "GetRecords.Latency": {"SampleCount": 2, "units": ["Milliseconds"]},
        "GetRecords.IteratorAgeMilliseconds": {"SampleCount": 2, "Minimum": 0,
                                               "units": ["Milliseconds"]},
        "ReadProvisionedThroughputExceeded": {"Sum": 0, "SampleCount": 2},
        "WriteProvisionedThroughputExceeded": {"Sum": 0, "SampleCount": 2},
    }
    for metric, w in want.items():
        t = expect_totals(ns, metric, dims, w)
        if metric.endswith("Latency") or metric.endswith("IteratorAgeMilliseconds"):
            check(0 <= t["Minimum"] <= t["Maximum"] < 60_000,
                  f"{metric}: Minimum/Maximum {t['Minimum']}/{t['Maximum']} out of range")
    eq(metric_names(ns, dims), sorted(STREAM_METRICS), "ListMetrics of the stream")
    eq(CW.list_metrics(Namespace=ns, Dimensions=dims + [{"Name": "ShardId"}])["Metrics"], [],
       "shard-level metrics without enhanced monitoring")
    # GetMetricData over the same metric.
    now = time.time()
    out = CW.get_metric_data(StartTime=at(now - 300), EndTime=at(now + 120), MetricDataQueries=[
        {"Id": "b", "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "IncomingBytes",
                                              "Dimensions": dims},
                                   "Period": 60, "Stat": "Sum"}}])
    eq(sum(out["MetricDataResults"][0]["Values"]), 25.0, "GetMetricData IncomingBytes Sum")
    # A failed call writes no data-path metrics.
    expect_error("ResourceNotFoundException", KINESIS.put_record, StreamName=name + "-none",
                 Data=b"x", PartitionKey="k")
    eq(CW.list_metrics(Namespace=ns, Dimensions=kinesis_dims(name + "-none"))["Metrics"], [],
       "metrics of a stream that does not exist")


def test_kinesis_runbook_cli_incoming_bytes():
    """The runbook command: `aws cloudwatch get-metric-statistics ... IncomingBytes ...
    --statistics Sum` gives the exact bytes written (data and partition keys). The AWS CLI
    v1 base64-encodes --data itself, so the record holds the literal text."""
    name = make_stream("runbook")
    cli("kinesis", "put-record", "--stream-name", name, "--data", "hello world",
        "--partition-key", "pk")  # 11 + 2
    KINESIS.put_records(StreamName=name, Records=[{"Data": b"x" * 100, "PartitionKey": "p1"},
                                                  {"Data": b"y" * 20, "PartitionKey": "p22"}])
    eq([r["Data"] for r in read_shard(name)["Records"]][0], b"hello world",
       "the CLI's record as stored")
    now = time.time()
    out = cli("cloudwatch", "get-metric-statistics", "--namespace", "AWS/Kinesis",
              "--metric-name", "IncomingBytes", "--dimensions", f"Name=StreamName,Value={name}",
              "--start-time", iso(now - 300), "--end-time", iso(now + 120), "--period", "60",
              "--statistics", "Sum")
    eq(out["Label"], "IncomingBytes", "Label")
    eq(sum(d["Sum"] for d in out["Datapoints"]), 13.0 + 102 + 23, "IncomingBytes Sum")
    eq({d["Unit"] for d in out["Datapoints"]}, {"Bytes"}, "Unit")
    out = cli("cloudwatch", "list-metrics", "--namespace", "AWS/Kinesis", "--metric-name",
              "IncomingRecords", "--dimensions", f"Name=StreamName,Value={name}")
    eq([m["MetricName"] for m in out["Metrics"]], ["IncomingRecords"], "list-metrics")


def test_kinesis_enhanced_monitoring_shard_metrics():
    name = make_stream("shardlvl", shards=2)
    ns = "AWS/Kinesis"
    # Before enhanced monitoring: stream-level metrics only.
    KINESIS.put_record(StreamName=name, Data=b"zz", PartitionKey="k", ExplicitHashKey="0")
    enabled = ["IncomingBytes", "OutgoingRecords", "IteratorAgeMilliseconds"]
    out = KINESIS.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=enabled)
    eq(sorted(out["DesiredShardLevelMetrics"]), sorted(enabled), "DesiredShardLevelMetrics")
    wait_active(name)
    KINESIS.put_record(StreamName=name, Data=b"aaaa", PartitionKey="k", ExplicitHashKey="0")
    KINESIS.put_records(StreamName=name, Records=[
        {"Data": b"bb", "PartitionKey": "k", "ExplicitHashKey": str(HALF)},
        {"Data": b"cc", "PartitionKey": "k", "ExplicitHashKey": str(HALF)}])
    eq(len(read_shard(name, 0)["Records"]), 2, "records of shard 0")
    eq(len(read_shard(name, 1)["Records"]), 2, "records of shard 1")
    listed = CW.list_metrics(Namespace=ns, Dimensions=kinesis_dims(name) + [{"Name": "ShardId"}])
    got = sorted((m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["ShardId"])
                 for m in listed["Metrics"])
    eq(got, sorted((m, shard_id(s)) for m in enabled for s in (0, 1)),
       "shard-level metrics listed (only the enabled ones)")
    for m in listed["Metrics"]:
        eq(len(m["Dimensions"]), 2, f"dimensions of shard-level {m['MetricName']}")
    expect_totals(ns, "IncomingBytes", kinesis_dims(name, 0), {"Sum": 5, "SampleCount": 1})
    expect_totals(ns, "IncomingBytes", kinesis_dims(name, 1), {"Sum": 6, "SampleCount": 1})
    expect_totals(ns, "OutgoingRecords", kinesis_dims(name, 0), {"Sum": 2, "SampleCount": 1})
    expect_totals(ns, "OutgoingRecords", kinesis_dims(name, 1), {"Sum": 2, "SampleCount": 1})
    expect_totals(ns, "IteratorAgeMilliseconds", kinesis_dims(name, 1), {"SampleCount": 1})
    for metric in ("IncomingRecords", "OutgoingBytes", "WriteProvisionedThroughputExceeded"):
        eq(totals(ns, metric, kinesis_dims(name, 0))["n"], 0, f"shard-level {metric} (not enabled)")
    expect_totals(ns, "IncomingBytes", kinesis_dims(name), {"Sum": 3 + 5 + 6, "SampleCount": 3})
    # Disabled again: no more shard-level data.
    KINESIS.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["IncomingBytes"])
    wait_active(name)
    KINESIS.put_record(StreamName=name, Data=b"more", PartitionKey="k", ExplicitHashKey="0")
    expect_totals(ns, "IncomingBytes", kinesis_dims(name), {"Sum": 3 + 5 + 6 + 5})
    expect_totals(ns, "IncomingBytes", kinesis_dims(name, 0), {"Sum": 5, "SampleCount": 1})


def test_kinesis_throttling_metrics():
    """On a limits-on server: throttled writes and reads show in PutRecords.ThrottledRecords,
    WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded and the success
    metrics, stream- and shard-level; throttled records are not FailedRecords."""
    k, cw = limited_server()
    name = unique("throttle")
    LIMITED_STREAMS.append(name)
    retry_limited(k.create_stream, StreamName=name, ShardCount=1)
    wait_active(name, client=k)
    retry_limited(k.enable_enhanced_monitoring, StreamName=name, ShardLevelMetrics=[
        "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded"])
    wait_active(name, client=k)
    batches = [[{"Data": b"x", "PartitionKey": "k"} for _ in range(500)] for _ in range(4)]
    results = burst(k.put_records, [{"StreamName": name, "Records": b} for b in batches])
    throttled = calls_ok = 0
    for i, (resp, err) in enumerate(results):
        check(err is None, f"PutRecords {i} failed as a whole: {err}")
        failed = [r for r in resp["Records"] if "ErrorCode" in r]
        for r in failed:
            eq(r["ErrorCode"], "ProvisionedThroughputExceededException", "ErrorCode")
        throttled += len(failed)
        calls_ok += len(failed) < 500
    check(throttled > 0, "2,000 records to one shard at once: none throttled (1,000/s)")
    dims, shard_dims = kinesis_dims(name), kinesis_dims(name, 0)
    ns = "AWS/Kinesis"
    expect_totals(ns, "PutRecords.TotalRecords", dims, {"Sum": 2000, "SampleCount": 4},
                  client=cw)
    expect_totals(ns, "PutRecords.ThrottledRecords", dims, {"Sum": throttled}, client=cw)
    expect_totals(ns, "PutRecords.SuccessfulRecords", dims, {"Sum": 2000 - throttled},
                  client=cw)
    expect_totals(ns, "PutRecords.FailedRecords", dims, {"Sum": 0, "SampleCount": 4}, client=cw)
    expect_totals(ns, "PutRecords.Success", dims, {"Sum": calls_ok, "SampleCount": 4},
                  client=cw)
    expect_totals(ns, "IncomingRecords", dims, {"Sum": 2000 - throttled}, client=cw)
    expect_totals(ns, "WriteProvisionedThroughputExceeded", dims, {"Sum": throttled},
                  client=cw)
    expect_totals(ns, "WriteProvisionedThroughputExceeded", shard_dims, {"Sum": throttled},
                  client=cw)
    # Reads: 12 GetRecords at once on a shard that takes 5 calls/s.
    it = k.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                              ShardIteratorType="LATEST")["ShardIterator"]
    results = burst(k.get_records, [{"ShardIterator": it}] * 12)
    errors = [e for _, e in results if e is not None]
    for e in errors:
        eq(e.response["Error"]["Code"], "ProvisionedThroughputExceededException",
           "GetRecords error")
    check(errors, "12 concurrent GetRecords on one shard: none throttled (5 calls/s)")
    n = len(errors)
    expect_totals(ns, "ReadProvisionedThroughputExceeded", dims, {"Sum": n, "SampleCount": 12},
                  client=cw)
    expect_totals(ns, "GetRecords.Success", dims, {"Sum": 12 - n, "SampleCount": 12}, client=cw)
    expect_totals(ns, "ReadProvisionedThroughputExceeded", shard_dims, {"Sum": n}, client=cw)


def test_kinesis_subscribe_to_shard_metrics():
    name = make_stream("efo")
    for i in range(3):
        KINESIS.put_record(StreamName=name, PartitionKey="pk", Data=f"rec{i}".encode())  # 6 B
    consumer = "watcher"
    c = KINESIS.register_stream_consumer(StreamARN=stream_arn(name),
                                         ConsumerName=consumer)["Consumer"]
    poll(lambda: KINESIS.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])[
        "ConsumerDescription"]["ConsumerStatus"] == "ACTIVE", "consumer ACTIVE", timeout=10)
    out = KINESIS.subscribe_to_shard(ConsumerARN=c["ConsumerARN"], ShardId=shard_id(0),
                                     StartingPosition={"Type": "TRIM_HORIZON"})
    try:
        event = next(iter(out["EventStream"]))["SubscribeToShardEvent"]
        eq(len(event["Records"]), 3, "records of the first event")
        expect_error("ResourceInUseException", KINESIS.subscribe_to_shard,
                     ConsumerARN=c["ConsumerARN"], ShardId=shard_id(0),
                     StartingPosition={"Type": "LATEST"})
    finally:
        out["EventStream"].close()
    ns, dims = "AWS/Kinesis", kinesis_dims(name, consumer=consumer)
    expect_totals(ns, "SubscribeToShard.Success", dims, {"Sum": 1, "SampleCount": 2})
    expect_totals(ns, "SubscribeToShard.RateExceeded", dims, {"Sum": 1})
    t = expect_totals(ns, "SubscribeToShardEvent.Records", dims, {"Sum": 3})
    n = t["SampleCount"]
    expect_totals(ns, "SubscribeToShardEvent.Bytes", dims, {"Sum": 18, "SampleCount": n})
    expect_totals(ns, "SubscribeToShardEvent.Success", dims, {"Sum": n, "SampleCount": n})
    t = expect_totals(ns, "SubscribeToShardEvent.MillisBehindLatest", dims, {"SampleCount": n})
    eq(t["units"], ["Milliseconds"], "MillisBehindLatest Unit")
    names = metric_names(ns, dims)
    for m in ("SubscribeToShard.Success", "SubscribeToShardEvent.Records",
              "SubscribeToShardEvent.Bytes", "SubscribeToShardEvent.MillisBehindLatest",
              "SubscribeToShardEvent.Success"):
        check(m in names, f"{m} not listed for StreamName+ConsumerName: {names}")


# --------------------------------------------------------------------------- alarms


def test_alarm_create_describe_replace_delete():
    prefix = unique("crud")
    ns = namespace("crud")
    dims = [{"Name": "Host", "Value": "h1"}]
    before = time.time()
    a = put_alarm(f"{prefix}-a", Namespace=ns, MetricName="cpu", Dimensions=dims,
                  AlarmDescription="the a alarm", Statistic="Average", Period=120,
                  EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=80.5,
                  ComparisonOperator="GreaterThanOrEqualToThreshold", Unit="Percent")
    b = put_alarm(f"{prefix}-b", Namespace=ns, MetricName="mem", ActionsEnabled=False,
                  OKActions=[f"arn:aws:sns:{REGION}:{ACCOUNT}:crud-topic"])
    c = put_alarm(f"{prefix}-c", Namespace=ns, MetricName="cpu", Dimensions=dims,
                  Statistic="Maximum", Period=60)
    got = alarm(a)
    eq(got["StateValue"], "INSUFFICIENT_DATA", "state of a new alarm")
    eq(got["StateReason"], "Unchecked: Initial alarm creation", "StateReason of a new alarm")
    expect = {"AlarmName": a, "AlarmArn": alarm_arn(a), "AlarmDescription": "the a alarm",
              "Namespace": ns, "MetricName": "cpu", "Dimensions": dims, "Statistic": "Average",
              "Period": 120, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 80.5,
              "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Unit": "Percent",
              "TreatMissingData": "ignore", "ActionsEnabled": True, "OKActions": [],
              "AlarmActions": [], "InsufficientDataActions": []}
    for key, value in expect.items():
        eq(got.get(key), value, f"{key} of {a}")
    for key in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp"):
        check(before - 2 <= epoch(got[key]) <= time.time() + 2, f"{key}: {got[key]}")
    eq(alarm(b)["ActionsEnabled"], False, "ActionsEnabled of b")
    eq(alarm(b)["OKActions"], [f"arn:aws:sns:{REGION}:{ACCOUNT}:crud-topic"], "OKActions of b")

    def names(**kw):
        return [x["AlarmName"] for x in CW.describe_alarms(**kw)["MetricAlarms"]]

    eq(names(AlarmNames=[c, a]), [a, c], "AlarmNames [c, a]")
    eq(names(AlarmNamePrefix=prefix), [a, b, c], "AlarmNamePrefix")
    eq(names(AlarmNamePrefix=prefix, ActionPrefix=f"arn:aws:sns:{REGION}:{ACCOUNT}:crud"), [b],
       "ActionPrefix")
    CW.set_alarm_state(AlarmName=c, StateValue="OK", StateReason="by hand")
    eq(names(AlarmNamePrefix=prefix, StateValue="OK"), [c], "StateValue OK")
    eq(names(AlarmNamePrefix=prefix, StateValue="INSUFFICIENT_DATA"), [a, b],
       "StateValue INSUFFICIENT_DATA")
    eq(names(AlarmNamePrefix=prefix, AlarmTypes=["CompositeAlarm"]), [], "CompositeAlarm only")
    # Paging.
    page = CW.describe_alarms(AlarmNamePrefix=prefix, MaxRecords=2)
    eq([x["AlarmName"] for x in page["MetricAlarms"]], [a, b], "first page of 2")
    check(page.get("NextToken"), "a first page of 2 of 3 alarms has a NextToken")
    page = CW.describe_alarms(AlarmNamePrefix=prefix, MaxRecords=2, NextToken=page["NextToken"])
    eq([x["AlarmName"] for x in page["MetricAlarms"]], [c], "second page")
    check("NextToken" not in page, "the last page has no NextToken")
    paginated = [x["AlarmName"] for p in CW.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, PaginationConfig={"PageSize": 1}) for x in p["MetricAlarms"]]
    eq(paginated, [a, b, c], "boto3 paginator, pages of 1")
    expect_error("InvalidNextToken", CW.describe_alarms, NextToken="not-a-token")
    # DescribeAlarmsForMetric: the alarms on one metric.
    got = CW.describe_alarms_for_metric(Namespace=ns, MetricName="cpu", Dimensions=dims)
    eq(sorted(x["AlarmName"] for x in got["MetricAlarms"]), [a, c], "alarms for cpu/h1")
    got = CW.describe_alarms_for_metric(Namespace=ns, MetricName="cpu", Dimensions=dims,
                                        Statistic="Maximum")
    eq([x["AlarmName"] for x in got["MetricAlarms"]], [c], "alarms for cpu/h1 Maximum")
    got = CW.describe_alarms_for_metric(Namespace=ns, MetricName="cpu", Dimensions=dims,
                                        Period=120)
    eq([x["AlarmName"] for x in got["MetricAlarms"]], [a], "alarms for cpu/h1 Period 120")
    got = CW.describe_alarms_for_metric(Namespace=ns, MetricName="mem")
    eq([x["AlarmName"] for x in got["MetricAlarms"]], [b], "alarms for mem")
    # Replace: new configuration, same state.
    put_alarm(c, Namespace=ns, MetricName="cpu", Dimensions=dims, Statistic="Maximum",
              Period=60, Threshold=7.0)
    got = alarm(c)
    eq((got["Threshold"], got["StateValue"]), (7.0, "OK"), "Threshold and state after replacing")
    summaries = [h["HistorySummary"] for h in history(c, HistoryItemType="ConfigurationUpdate")]
    eq(summaries, [f'Alarm "{c}" updated', f'Alarm "{c}" created'],
       "ConfigurationUpdate history")
    data = json.loads(history(c, HistoryItemType="ConfigurationUpdate")[0]["HistoryData"])
    eq(data.get("type"), "Update", "HistoryData type of the update")
    # Validation (CloudWatch's model lists no validation error for PutMetricAlarm, so any
    # of its generic 400 codes will do; nothing is created).
    invalid = ("InvalidParameterValue", "InvalidParameterCombination", "ValidationError")
    for bad in (dict(Period=45), dict(EvaluationPeriods=2, DatapointsToAlarm=3),
                dict(ExtendedStatistic="p90"), dict(ComparisonOperator="Bigger"),
                dict(TreatMissingData="sometimes")):
        bad_name = unique("bad")
        expect_refused(invalid, put_alarm, bad_name, **bad)
        eq(CW.describe_alarms(AlarmNames=[bad_name])["MetricAlarms"], [], f"alarm of {bad}")
    # Delete: an unknown name deletes nothing.
    expect_error("ResourceNotFound", CW.delete_alarms, status=404,
                 AlarmNames=[a, f"{prefix}-nope"])
    eq(names(AlarmNamePrefix=prefix), [a, b, c], "alarms after a refused DeleteAlarms")
    CW.delete_alarms(AlarmNames=[a, b, c])
    eq(names(AlarmNamePrefix=prefix), [], "alarms after DeleteAlarms")
    eq(CW.describe_alarms_for_metric(Namespace=ns, MetricName="cpu")["MetricAlarms"], [],
       "DescribeAlarmsForMetric after DeleteAlarms")


def test_set_alarm_state_and_history():
    name = put_alarm(label="state")
    expect_error("InvalidFormat", CW.set_alarm_state, status=400, AlarmName=name,
                 StateValue="ALARM", StateReason="x", StateReasonData="{not json")
    expect_error("ResourceNotFound", CW.set_alarm_state, AlarmName=name + "-nope",
                 StateValue="ALARM", StateReason="x")
    eq(alarm(name)["StateValue"], "INSUFFICIENT_DATA", "state after refused SetAlarmState")
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing",
                       StateReasonData='{"k": 1}')
    got = alarm(name)
    eq((got["StateValue"], got["StateReason"]), ("ALARM", "testing"), "state and reason")
    eq(json.loads(got.get("StateReasonData", "null")), {"k": 1}, "StateReasonData")
    CW.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="back")
    eq(alarm(name)["StateValue"], "OK", "state after the second SetAlarmState")
    items = history(name)
    eq([(h["HistoryItemType"], h["HistorySummary"]) for h in items], [
        ("StateUpdate", "Alarm updated from ALARM to OK"),
        ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM"),
        ("ConfigurationUpdate", f'Alarm "{name}" created'),
    ], "history, newest first")
    for h in items:
        eq((h["AlarmName"], h.get("AlarmType")), (name, "MetricAlarm"), "AlarmName, AlarmType")
    data = json.loads(items[1]["HistoryData"])
    eq(data["oldState"]["stateValue"], "INSUFFICIENT_DATA", "HistoryData oldState")
    eq(data["newState"]["stateValue"], "ALARM", "HistoryData newState")
    eq(data["newState"]["stateReason"], "testing", "HistoryData newState stateReason")
    eq(data["newState"].get("stateReasonData"), {"k": 1}, "HistoryData newState stateReasonData")
    data = json.loads(items[0]["HistoryData"])
    eq((data["oldState"]["stateValue"], data["newState"]["stateValue"]), ("ALARM", "OK"),
       "HistoryData of the second change")
    eq(json.loads(items[2]["HistoryData"]).get("type"), "Create", "HistoryData of the creation")
    eq([h["HistorySummary"] for h in history(name, HistoryItemType="StateUpdate")],
       [items[0]["HistorySummary"], items[1]["HistorySummary"]], "HistoryItemType StateUpdate")
    eq(history(name, HistoryItemType="Action"), [], "HistoryItemType Action")
    eq([h["HistoryItemType"] for h in history(name, ScanBy="TimestampAscending")],
       ["ConfigurationUpdate", "StateUpdate", "StateUpdate"], "TimestampAscending")
    page = CW.describe_alarm_history(AlarmName=name, MaxRecords=2)
    eq(len(page["AlarmHistoryItems"]), 2, "first history page")
    check(page.get("NextToken"), "a history page of 2 of 3 items has a NextToken")
    page = CW.describe_alarm_history(AlarmName=name, MaxRecords=2, NextToken=page["NextToken"])
    eq([h["HistoryItemType"] for h in page["AlarmHistoryItems"]], ["ConfigurationUpdate"],
       "second history page")
    now = time.time()
    eq(CW.describe_alarm_history(AlarmName=name, StartDate=at(now + 60),
                                 EndDate=at(now + 120))["AlarmHistoryItems"], [],
       "history in a future range")
    expect_error("InvalidNextToken", CW.describe_alarm_history, AlarmName=name,
                 NextToken="garbage")
    # Deletion is recorded too.
    CW.delete_alarms(AlarmNames=[name])
    eq(history(name)[0]["HistoryItemType"], "ConfigurationUpdate", "newest item after deletion")
    eq(json.loads(history(name)[0]["HistoryData"]).get("type"), "Delete", "deletion HistoryData")


def test_alarm_evaluation_high_resolution():
    """10-second alarms on high-resolution data, evaluated by the server at each period
    boundary: TreatMissingData, data above and below the threshold, metric math, data
    arriving (OK -> ALARM) and a SetAlarmState overridden by the next evaluation."""
    ns = namespace("eval")
    now = int(time.time())
    span = range(now - 40, now + 26, 5)  # every 10-second period of [now-40, now+25]
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": metric, "Value": value, "StorageResolution": 1, "Timestamp": at(s)}
        for metric, value in (("high", 10.0), ("low", 1.0)) for s in span])

    def make(label, metric, missing, **kw):
        return put_alarm(label=label, Namespace=ns, MetricName=metric, Period=10,
                         EvaluationPeriods=1, Threshold=5.0, Statistic="Maximum",
                         ComparisonOperator="GreaterThanThreshold", TreatMissingData=missing,
                         **kw)

    breaching = make("breaching", "empty", "breaching")
    not_breaching = make("notbreaching", "empty", "notBreaching")
    missing = make("missing", "empty", "missing")
    high = make("high", "high", "missing")
    low = make("low", "low", "missing")
    arrive = make("arrive", "arrive", "notBreaching")
    back = make("back", "back", "notBreaching")
    math_alarm = put_alarm(label="math", Threshold=4.0, EvaluationPeriods=1,
                           ComparisonOperator="GreaterThanThreshold", TreatMissingData="missing",
                           Metrics=[
                               {"Id": "m1", "ReturnData": False, "MetricStat": {
                                   "Metric": {"Namespace": ns, "MetricName": "high"},
                                   "Period": 10, "Stat": "Maximum"}},
                               {"Id": "e1", "Expression": "m1/2", "Label": "half"}])
    got = wait_state(breaching, "ALARM", timeout=12)
    eq(got["StateReason"], "Threshold Crossed: no datapoints were received for 1 period and "
                           "1 missing datapoint was treated as [Breaching].",
       "StateReason of a breaching alarm without data")
    got = wait_state(not_breaching, "OK", timeout=12)
    eq(got["StateReason"], "Threshold Crossed: no datapoints were received for 1 period and "
                           "1 missing datapoint was treated as [NonBreaching].",
       "StateReason of a notBreaching alarm without data")
    got = wait_state(high, "ALARM", timeout=12)
    check(got["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints"),
          f"StateReason of the high alarm: {got['StateReason']!r}")
    reason = json.loads(got["StateReasonData"])
    eq((reason.get("recentDatapoints"), reason.get("threshold")), ([10.0], 5.0),
       "StateReasonData recentDatapoints, threshold")
    wait_state(low, "OK", timeout=12)
    wait_state(math_alarm, "ALARM", timeout=12)
    got = alarm(math_alarm)
    eq([q["Id"] for q in got.get("Metrics", [])], ["m1", "e1"], "Metrics of the math alarm")
    # Evaluated in the same ticks as the others: no data and `missing` keep INSUFFICIENT_DATA.
    eq(alarm(missing)["StateValue"], "INSUFFICIENT_DATA", "a `missing` alarm without data")
    eq(history(missing, HistoryItemType="StateUpdate"), [], "StateUpdates of the `missing` alarm")
    wait_state(arrive, "OK", timeout=12)
    wait_state(back, "OK", timeout=12)
    # Data above the threshold arrives; SetAlarmState is overridden by the next evaluation.
    CW.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "arrive", "Value": 9.0, "StorageResolution": 1}])
    CW.set_alarm_state(AlarmName=back, StateValue="ALARM", StateReason="forced")
    eq(alarm(back)["StateValue"], "ALARM", "state right after SetAlarmState")
    wait_state(arrive, "ALARM", timeout=13)
    wait_state(back, "OK", timeout=13)
    # Oldest first: later evaluations (no data: OK again) may have added more.
    items = history(arrive, HistoryItemType="StateUpdate", ScanBy="TimestampAscending")
    eq([h["HistorySummary"] for h in items[:2]],
       ["Alarm updated from INSUFFICIENT_DATA to OK", "Alarm updated from OK to ALARM"],
       "StateUpdates of the alarm the data arrived for")
    data = json.loads(items[1]["HistoryData"])
    eq(data["newState"]["stateReasonData"].get("recentDatapoints"), [9.0],
       "recentDatapoints of the OK -> ALARM change")
    items = history(back, HistoryItemType="StateUpdate", ScanBy="TimestampAscending")
    eq([h["HistorySummary"] for h in items[:3]],
       ["Alarm updated from INSUFFICIENT_DATA to OK", "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK"], "StateUpdates of the alarm set by hand")
    eq(json.loads(items[1]["HistoryData"])["newState"]["stateReason"], "forced",
       "reason of the SetAlarmState change")


def test_alarm_webhook_action():
    path = f"/hook-{uuid.uuid4().hex[:8]}"
    ok_path = path + "-ok"
    ns = namespace("hook")
    dims = [{"Name": "Host", "Value": "web-1"}]
    name = put_alarm(label="hook", Namespace=ns, MetricName="errors", Dimensions=dims,
                     AlarmDescription="webhook test", AlarmActions=[hook_url(path)],
                     OKActions=[hook_url(ok_path)])
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="webhook test")
    post = wait_posts(path, 1)[0]
    headers = {k.lower(): v for k, v in post["headers"].items()}
    eq(headers.get("x-amz-sns-message-type"), "Notification", "x-amz-sns-message-type header")
    envelope = json.loads(post["body"])
    eq(envelope.get("Type"), "Notification", "Type")
    check(str(envelope.get("TopicArn", "")).startswith(f"arn:aws:sns:{REGION}:{ACCOUNT}:"),
          f"TopicArn: {envelope.get('TopicArn')!r}")
    check(envelope.get("Subject", "").startswith(f'ALARM: "{name}" in '),
          f"Subject: {envelope.get('Subject')!r}")
    check(envelope.get("MessageId") and envelope.get("Timestamp"),
          f"MessageId and Timestamp: {envelope}")
    message = json.loads(envelope["Message"])
    for key, value in (("AlarmName", name), ("AlarmDescription", "webhook test"),
                       ("NewStateValue", "ALARM"), ("OldStateValue", "INSUFFICIENT_DATA"),
                       ("NewStateReason", "webhook test"), ("AWSAccountId", ACCOUNT),
                       ("AlarmArn", alarm_arn(name)), ("AlarmActions", [hook_url(path)]),
                       ("OKActions", [hook_url(ok_path)])):
        eq(message.get(key), value, f"Message {key}")
    trigger = message.get("Trigger", {})
    for key, value in (("MetricName", "errors"), ("Namespace", ns), ("Period", 60),
                       ("EvaluationPeriods", 1), ("Threshold", 5.0),
                       ("ComparisonOperator", "GreaterThanThreshold"),
                       ("StatisticType", "Statistic"), ("Statistic", "MAXIMUM"), ("Unit", None),
                       ("Dimensions", [{"value": "web-1", "name": "Host"}])):
        eq(trigger.get(key), value, f"Trigger {key}")
    wait_history(name, lambda h: h["HistoryItemType"] == "Action"
                 and h["HistorySummary"] == f"Successfully executed action {hook_url(path)}",
                 "the Action history item of the webhook")
    CW.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="recovered")
    message = json.loads(json.loads(wait_posts(ok_path, 1)[0]["body"])["Message"])
    eq((message.get("NewStateValue"), message.get("OldStateValue")), ("OK", "ALARM"),
       "the OK notification")
    # Actions disabled: the state changes, nothing is sent.
    CW.disable_alarm_actions(AlarmNames=[name])
    eq(alarm(name)["ActionsEnabled"], False, "ActionsEnabled after DisableAlarmActions")
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="silent")
    eq(alarm(name)["StateValue"], "ALARM", "state with actions disabled")
    CW.enable_alarm_actions(AlarmNames=[name])
    eq(alarm(name)["ActionsEnabled"], True, "ActionsEnabled after EnableAlarmActions")
    CW.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="loud again")
    message = json.loads(json.loads(wait_posts(ok_path, 2)[1]["body"])["Message"])
    eq((message.get("NewStateReason"), message.get("OldStateValue")), ("loud again", "ALARM"),
       "the OK notification after re-enabling")
    eq(len(hook_posts(path)), 1, "ALARM notifications (the one with actions disabled not sent)")
    # The server records an action after the webhook has answered: wait for the third item.
    actions = poll(lambda: (lambda a: a if len(a) >= 3 else None)(
        history(name, HistoryItemType="Action")), "three Action history items", timeout=10.0,
        interval=0.2)
    eq(sorted(h["HistorySummary"] for h in actions),
       sorted([f"Successfully executed action {hook_url(path)}"]
              + [f"Successfully executed action {hook_url(ok_path)}"] * 2),
       "Action history items")


def test_set_alarm_state_to_the_same_state_runs_no_action():
    """SetAlarmState: "When the updated state differs from the previous value, the action
    configured for the appropriate state is invoked" -- setting the state an alarm is
    already in sends nothing."""
    path = f"/same-{uuid.uuid4().hex[:8]}"
    ok_path = path + "-ok"
    name = put_alarm(label="same", AlarmActions=[hook_url(path)], OKActions=[hook_url(ok_path)])
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="first")
    wait_posts(path, 1)
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="again")
    eq(alarm(name)["StateReason"], "again", "StateReason after setting the same state")
    CW.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="done")
    wait_posts(ok_path, 1)
    # Anything queued before the OK notification has been delivered by now; allow one tick.
    wait_history(name, lambda h: h["HistorySummary"]
                 == f"Successfully executed action {hook_url(ok_path)}", "the OK action")
    time.sleep(1.0)
    reasons = [json.loads(json.loads(p["body"])["Message"])["NewStateReason"]
               for p in hook_posts(path)]
    eq(reasons, ["first"], "ALARM notifications (NewStateReason of each)")


def test_alarm_failing_webhook_action():
    url = f"http://127.0.0.1:{free_port()}/refused"
    name = put_alarm(label="refused", AlarmActions=[url])
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="no listener")
    items = wait_history(name, lambda h: h["HistoryItemType"] == "Action",
                         "an Action history item for a refused webhook")
    summary = items[-1]["HistorySummary"]
    check(summary.startswith(f"Failed to execute action {url} (attempt 1 of 5, retrying"),
          f"summary of the first failed attempt: {summary!r}")
    json.loads(items[-1]["HistoryData"])


def test_alarm_kinesis_stream_action():
    stream = make_stream("alarmsink")
    action = stream_arn(stream)
    name = put_alarm(label="tostream", AlarmActions=[action])
    CW.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="to the stream")
    it = KINESIS.get_shard_iterator(StreamName=stream, ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []

    def read():
        nonlocal it
        out = KINESIS.get_records(ShardIterator=it)
        it = out["NextShardIterator"]
        records.extend(out["Records"])
        return records

    poll(read, "the alarm record on the action stream", timeout=10, interval=0.3)
    eq(len(records), 1, "records on the action stream")
    message = json.loads(records[0]["Data"])
    for key, value in (("AlarmName", name), ("NewStateValue", "ALARM"),
                       ("OldStateValue", "INSUFFICIENT_DATA"), ("NewStateReason", "to the stream"),
                       ("AlarmArn", alarm_arn(name))):
        eq(message.get(key), value, f"record {key}")
    wait_history(name, lambda h: h["HistoryItemType"] == "Action"
                 and h["HistorySummary"] == f"Successfully executed action {action}",
                 "the Action history item of the stream action")


def test_recommended_alarms_install():
    check(harness.RIVULET_BIN, "no rivulet binary: pass --rivulet-bin or set $RIVULET_BIN")
    stream = make_stream("recommended")
    path = f"/recommended-{uuid.uuid4().hex[:8]}"
    suffixes = ["IteratorAge", "ReadProvisionedThroughputExceeded",
                "WriteProvisionedThroughputExceeded", "PutRecordSuccess", "PutRecordsSuccess",
                "GetRecordsSuccess"]
    names = [f"{stream}-{s}" for s in suffixes]
    CREATED_ALARMS.extend(names)
    proc = subprocess.run([harness.RIVULET_BIN, "alarms", "install-recommended", stream,
                           "--endpoint-url", harness.ENDPOINT, "--action", hook_url(path)],
                          capture_output=True, text=True, timeout=60)
    eq(proc.returncode, 0, f"install-recommended exit status (stderr {proc.stderr.strip()!r})")
    eq(proc.stdout.split(), names, "alarm names printed")
    got = {a["AlarmName"]: a for a in
           CW.describe_alarms(AlarmNamePrefix=f"{stream}-")["MetricAlarms"]}
    eq(sorted(got), sorted(names), "alarms installed")
    spec = [  # metric, statistic, comparison, threshold, missing data
        ("GetRecords.IteratorAgeMilliseconds", "Maximum", "GreaterThanOrEqualToThreshold",
         60000.0, "breaching"),
        ("ReadProvisionedThroughputExceeded", "Average", "GreaterThanOrEqualToThreshold",
         0.01, "breaching"),
        ("WriteProvisionedThroughputExceeded", "Average", "GreaterThanOrEqualToThreshold",
         0.01, "breaching"),
        ("PutRecord.Success", "Average", "LessThanOrEqualToThreshold", 0.95, "notBreaching"),
        ("PutRecords.Success", "Average", "LessThanOrEqualToThreshold", 0.95, "notBreaching"),
        ("GetRecords.Success", "Average", "LessThanOrEqualToThreshold", 0.98, "breaching"),
    ]
    for name, (metric, stat, op, threshold, missing) in zip(names, spec):
        a = got[name]
        eq((a["Namespace"], a["MetricName"], a["Dimensions"]),
           ("AWS/Kinesis", metric, [{"Name": "StreamName", "Value": stream}]), f"{name} metric")
        eq((a["Statistic"], a["ComparisonOperator"], a["Threshold"], a["TreatMissingData"]),
           (stat, op, threshold, missing), f"{name} statistic, comparison, threshold, missing")
        eq((a["Period"], a["EvaluationPeriods"]), (60, 1), f"{name} period, evaluation periods")
        eq((a["AlarmActions"], a["OKActions"]), ([hook_url(path)], [hook_url(path)]),
           f"{name} actions")
    # Evaluated on a stream without traffic: missing data decides.
    for name, (*_, missing) in zip(names, spec):
        wait_state(name, "ALARM" if missing == "breaching" else "OK", timeout=10)
    posts = wait_posts(path, 6)
    states = sorted((m["AlarmName"], m["NewStateValue"]) for m in
                    (json.loads(json.loads(p["body"])["Message"]) for p in posts))
    eq(states, sorted((n, "ALARM" if s[-1] == "breaching" else "OK")
                      for n, s in zip(names, spec)), "notifications sent")


# --------------------------------------------------------------------------- dashboards


def test_dashboards():
    prefix = unique("dash")
    a, b = f"{prefix}-a", f"{prefix}-b"
    CREATED_DASHBOARDS.extend([a, b])
    body = json.dumps({"widgets": [
        {"type": "text", "x": 0, "y": 0, "width": 6, "height": 3,
         "properties": {"markdown": "# Streams"}},
        {"type": "metric", "x": 6, "y": 0, "width": 12, "height": 6,
         "properties": {"metrics": [["AWS/Kinesis", "IncomingBytes", "StreamName", "s1"]],
                        "region": REGION, "stat": "Sum", "period": 60}},
    ]})
    out = CW.put_dashboard(DashboardName=a, DashboardBody=body)
    eq(out.get("DashboardValidationMessages", []), [], "DashboardValidationMessages")
    got = CW.get_dashboard(DashboardName=a)
    eq((got["DashboardName"], got["DashboardBody"]), (a, body), "GetDashboard name and body")
    eq(got["DashboardArn"], f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{a}", "DashboardArn")
    body_b = json.dumps({"widgets": []})
    CW.put_dashboard(DashboardName=b, DashboardBody=body_b)
    entries = CW.list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"]
    eq([e["DashboardName"] for e in entries], [a, b], "ListDashboards by prefix")
    eq([e["Size"] for e in entries], [len(body), len(body_b)], "Size")
    for e in entries:
        eq(e["DashboardArn"], f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{e['DashboardName']}",
           "DashboardArn of an entry")
        check(abs(epoch(e["LastModified"]) - time.time()) < 60, f"LastModified: {e}")
    eq(CW.list_dashboards(DashboardNamePrefix=a)["DashboardEntries"][0]["DashboardName"], a,
       "ListDashboards by a full name")
    # Replace.
    body2 = json.dumps({"widgets": [{"type": "text", "properties": {"markdown": "v2"}}]})
    CW.put_dashboard(DashboardName=a, DashboardBody=body2)
    eq(CW.get_dashboard(DashboardName=a)["DashboardBody"], body2, "body after PutDashboard again")
    # Bodies that are not dashboards.
    for bad in ("not json", "[]", "{}", '{"widgets": 5}', '{"widgets": ["x"]}',
                '{"widgets": [{"type": "bogus"}]}',
                '{"widgets": [{"type": "text", "properties": {}}]}'):
        expect_error("InvalidParameterInput", CW.put_dashboard, status=400,
                     DashboardName=f"{prefix}-bad", DashboardBody=bad)
    expect_error("ResourceNotFound", CW.get_dashboard, status=404, DashboardName=f"{prefix}-bad")
    # A bad name is InvalidParameterValue ("... for field DashboardName contains invalid
    # characters", as CloudWatch answers it).
    expect_error("InvalidParameterValue", CW.put_dashboard, status=400,
                 DashboardName=f"{prefix} bad!", DashboardBody=body_b)
    eq(CW.list_dashboards(DashboardNamePrefix=f"{prefix} ")["DashboardEntries"], [],
       "dashboards after a refused name")
    # Delete: all or nothing.
    expect_error("ResourceNotFound", CW.delete_dashboards, status=404,
                 DashboardNames=[f"{prefix}-none"])
    expect_error("ResourceNotFound", CW.delete_dashboards, DashboardNames=[a, f"{prefix}-none"])
    eq(CW.get_dashboard(DashboardName=a)["DashboardBody"], body2,
       "a dashboard named in a refused DeleteDashboards")
    CW.delete_dashboards(DashboardNames=[a, b])
    eq(CW.list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"], [],
       "ListDashboards after DeleteDashboards")
    expect_error("ResourceNotFound", CW.get_dashboard, DashboardName=a)


def test_persistence_across_restart():
    """A server of the suite's own, stopped (SIGTERM) and started again on the same data
    dir: metrics (open buckets included), alarms with their state and history, and
    dashboards are all still there."""
    root = tempfile.mkdtemp(prefix="rivulet-cw-restart-")
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    srv = None
    try:
        srv = start_server(data, log, "--limits", "off")
        k, cw = client("kinesis", srv["endpoint"]), client("cloudwatch", srv["endpoint"])
        k.create_stream(StreamName="kept", ShardCount=1)
        wait_active("kept", client=k)
        k.put_record(StreamName="kept", Data=b"persist", PartitionKey="pk")  # 9 bytes
        ns = namespace("restart")
        cw.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "now", "Value": 42.0, "Unit": "Count"},
            {"MetricName": "hr", "Value": 3.0, "StorageResolution": 1}])
        cw.put_metric_alarm(AlarmName="kept-alarm", Namespace=ns, MetricName="now",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                            ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
        cw.set_alarm_state(AlarmName="kept-alarm", StateValue="ALARM", StateReason="persisted")
        body = json.dumps({"widgets": [{"type": "text", "properties": {"markdown": "kept"}}]})
        cw.put_dashboard(DashboardName="kept-dash", DashboardBody=body)
        before = {m: totals(ns, m, [], client=cw) for m in ("now", "hr")}
        before["IncomingBytes"] = totals("AWS/Kinesis", "IncomingBytes", kinesis_dims("kept"),
                                         client=cw)
        eq((before["now"]["Sum"], before["hr"]["Sum"], before["IncomingBytes"]["Sum"]),
           (42, 3, 9), "sums before the restart")
        status = stop_server(srv)
        eq(status, 0, f"exit status after SIGTERM (log: {log_tail(srv)!r})")
        srv = start_server(data, log, "--limits", "off")
        k, cw = client("kinesis", srv["endpoint"]), client("cloudwatch", srv["endpoint"])
        for m in ("now", "hr"):
            t = totals(ns, m, [], client=cw)
            eq((t["SampleCount"], t["Sum"]), (before[m]["SampleCount"], before[m]["Sum"]),
               f"{m}: SampleCount, Sum after the restart")
        t = totals("AWS/Kinesis", "IncomingBytes", kinesis_dims("kept"), client=cw)
        eq((t["SampleCount"], t["Sum"]), (1, 9), "IncomingBytes after the restart")
        eq(sorted(m["MetricName"] for m in cw.list_metrics(Namespace=ns)["Metrics"]),
           ["hr", "now"], "ListMetrics after the restart")
        a = cw.describe_alarms(AlarmNames=["kept-alarm"])["MetricAlarms"]
        eq([(x["StateValue"], x["StateReason"], x["Threshold"]) for x in a],
           [("ALARM", "persisted", 1.0)], "the alarm after the restart")
        items = cw.describe_alarm_history(AlarmName="kept-alarm")["AlarmHistoryItems"]
        eq([h["HistoryItemType"] for h in items], ["StateUpdate", "ConfigurationUpdate"],
           "alarm history after the restart")
        eq(cw.get_dashboard(DashboardName="kept-dash")["DashboardBody"], body,
           "dashboard after the restart")
    finally:
        if srv is not None:
            stop_server(srv)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- misc errors, CLI


def test_missing_parameters():
    now = time.time()
    for fn, kwargs in (
            (CW_RAW.get_metric_statistics, dict(Namespace="RivuletTest/x", StartTime=at(now - 60),
                                                EndTime=at(now), Period=60,
                                                Statistics=["Sum"])),
            (CW_RAW.put_metric_data, dict(MetricData=[{"MetricName": "m", "Value": 1}])),
            (CW_RAW.put_metric_alarm, dict(Namespace="RivuletTest/x", MetricName="m",
                                           Statistic="Sum", Period=60, EvaluationPeriods=1,
                                           Threshold=1, ComparisonOperator="GreaterThanThreshold")),
            (CW_RAW.set_alarm_state, dict(AlarmName="x", StateValue="OK")),
            (CW_RAW.delete_alarms, {}),
            (CW_RAW.get_dashboard, {}),
    ):
        try:
            expect_error("MissingParameter", fn, status=400, **kwargs)
        except AssertionError as e:
            raise AssertionError(f"{fn.__name__}: {e}") from None


def test_cli_cloudwatch():
    ns = namespace("cli")
    base = base_minute()
    name = unique("clialarm")
    CREATED_ALARMS.append(name)
    cli("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "jobs",
        "--value", "4", "--unit", "Count", "--dimensions", "Queue=q1",
        "--timestamp", iso(base + 10))
    cli("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-data", json.dumps([
        {"MetricName": "jobs", "Value": 6, "Unit": "Count", "Timestamp": iso(base + 20),
         "Dimensions": [{"Name": "Queue", "Value": "q1"}]}]))
    out = cli("cloudwatch", "get-metric-statistics", "--namespace", ns, "--metric-name", "jobs",
              "--dimensions", "Name=Queue,Value=q1", "--start-time", iso(base),
              "--end-time", iso(base + 60), "--period", "60",
              "--statistics", "Sum", "SampleCount", "Maximum")
    eq([(d["Sum"], d["SampleCount"], d["Maximum"], d["Unit"]) for d in out["Datapoints"]],
       [(10.0, 2.0, 6.0, "Count")], "get-metric-statistics")
    cli("cloudwatch", "put-metric-alarm", "--alarm-name", name, "--namespace", ns,
        "--metric-name", "jobs", "--dimensions", "Name=Queue,Value=q1", "--statistic", "Sum",
        "--period", "60", "--evaluation-periods", "1", "--threshold", "3",
        "--comparison-operator", "GreaterThanThreshold", "--treat-missing-data", "ignore")
    cli("cloudwatch", "set-alarm-state", "--alarm-name", name, "--state-value", "ALARM",
        "--state-reason", "from the CLI")
    out = cli("cloudwatch", "describe-alarms", "--alarm-names", name)
    a = out["MetricAlarms"][0]
    eq((a["AlarmName"], a["StateValue"], a["StateReason"], a["Threshold"]),
       (name, "ALARM", "from the CLI", 3.0), "describe-alarms")
    out = cli("cloudwatch", "describe-alarm-history", "--alarm-name", name,
              "--history-item-type", "StateUpdate")
    eq([h["HistorySummary"] for h in out["AlarmHistoryItems"]],
       ["Alarm updated from INSUFFICIENT_DATA to ALARM"], "describe-alarm-history")
    cli_error("InvalidFormat", "cloudwatch", "set-alarm-state", "--alarm-name", name,
              "--state-value", "OK", "--state-reason", "x", "--state-reason-data", "nope")
    cli_error("InvalidParameterValue", "cloudwatch", "put-metric-data", "--namespace",
              "AWS/Kinesis", "--metric-name", "x", "--value", "1")
    cli("cloudwatch", "delete-alarms", "--alarm-names", name)
    cli_error("ResourceNotFound", "cloudwatch", "delete-alarms", "--alarm-names", name)
    cli_error("InvalidParameterInput", "cloudwatch", "put-dashboard", "--dashboard-name",
              unique("clidash"), "--dashboard-body", '{"widgets": {}}')


# --------------------------------------------------------------------------- runner


def main():
    global CW, CW_RAW, KINESIS
    args = harness.parse_args("server binary: install-recommended and the limits-on server")
    CW = client("cloudwatch", harness.ENDPOINT)
    CW_RAW = client("cloudwatch", harness.ENDPOINT, parameter_validation=False)
    KINESIS = client("kinesis", harness.ENDPOINT)
    return harness.run("cloudwatch", globals(), args, cleanup=cleanup, finish=stop_hook)


if __name__ == "__main__":
    sys.exit(main())
