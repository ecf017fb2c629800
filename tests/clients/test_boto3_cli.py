#!/usr/bin/env python3
"""Rivulet conformance tests through real AWS clients: boto3 and the AWS CLI (v1).

Self-contained: no pytest. Every top-level ``test_*`` function runs in file order;
each prints ``ok NAME`` or ``FAIL NAME: reason``. The closing line is
``python: N passed, M failed``; with ``--counts-file PATH`` the counts are also
written there as ``N M`` for scripts/test-clients.sh.

Usage:
    python test_boto3_cli.py --endpoint http://127.0.0.1:PORT [--counts-file F] [-k SUBSTR]
                             [--rivulet-bin PATH]

The AWS CLI used is the ``aws`` next to this interpreter (the venv's), or $AWS_CLI.

The server at --endpoint runs with ``--limits off``. The throughput-limit tests
(``test_limits_*``) need limits on, so the suite starts its own second server for them:
``RIVULET_BIN serve --listen 127.0.0.1:FREE_PORT --data-dir TMP`` with the default
``--limits aws``, from --rivulet-bin or $RIVULET_BIN. It is started on first use and
stopped (and its data dir removed) when the suite ends.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
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
MAX_HASH = 2**128 - 1
HALF = 2**127  # first hash key of the second shard of a 2-shard stream
ONE_MIB = 1024 * 1024

ENDPOINT = None  # set in main()
AWS_CLI = None  # set in main()
KINESIS = None  # boto3 client, set in main()
RUN_ID = uuid.uuid4().hex[:6]
CREATED = []  # stream names created by the current test; deleted after it

RIVULET_BIN = None  # server binary for the suite's own limits-on server, set in main()
LIMITED = {}  # that server once started: proc, root, endpoint, client (or error)
LIMITED_CREATED = []  # streams created on it by the current test; deleted after it

# The shard-level metrics of enhanced monitoring, as Kinesis lists them.
ALL_METRICS = ["IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
               "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
               "IteratorAgeMilliseconds"]


# --------------------------------------------------------------------------- helpers


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def unique(label):
    return f"rv-{RUN_ID}-{label}-{uuid.uuid4().hex[:6]}"


def arn_of(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def shard_id(n):
    return f"shardId-{n:012d}"


def wait_active(name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        status = KINESIS.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"
        ]["StreamStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {name} still {status} after {timeout}s")
        time.sleep(0.05)


def make_stream(label, shards=1):
    """Create a stream through boto3 (ShardCount given unless shards is None), wait ACTIVE."""
    name = unique(label)
    CREATED.append(name)
    if shards is None:
        KINESIS.create_stream(StreamName=name)
    else:
        KINESIS.create_stream(StreamName=name, ShardCount=shards)
    wait_active(name)
    return name


def cleanup_streams():
    while CREATED:
        name = CREATED.pop()
        try:
            KINESIS.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass
    while LIMITED_CREATED:
        name = LIMITED_CREATED.pop()
        try:
            LIMITED["client"].delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass


def expect_error(code, fn, **kwargs):
    """Call fn(**kwargs), which must fail with error code `code`; return the message."""
    try:
        fn(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        message = e.response["Error"].get("Message", "")
        if got != code:
            raise AssertionError(f"expected {code}, got {got}: {message!r}")
        eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, f"HTTP status of {code}")
        return message
    raise AssertionError(f"expected {code}, but the call succeeded")


def cli_run(*args, endpoint=None, max_attempts=None):
    """Run `aws kinesis ARGS` against --endpoint (or `endpoint`). `max_attempts` sets
    AWS_MAX_ATTEMPTS, e.g. 1 so that the CLI does not retry LimitExceededException."""
    cmd = [AWS_CLI, "kinesis", *args, "--endpoint-url", endpoint or ENDPOINT,
           "--region", REGION, "--output", "json"]
    env = None
    if max_attempts is not None:
        env = dict(os.environ, AWS_MAX_ATTEMPTS=str(max_attempts))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def cli(*args, **kw):
    """Run `aws kinesis ARGS`; it must succeed. Returns the parsed JSON output (or None)."""
    proc = cli_run(*args, **kw)
    if proc.returncode != 0:
        raise AssertionError(
            f"aws kinesis {' '.join(args[:1])} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    out = proc.stdout.strip()
    return json.loads(out) if out else None


def cli_error(code, *args, **kw):
    """Run `aws kinesis ARGS`; it must fail with service error `code`. Returns stderr."""
    proc = cli_run(*args, **kw)
    check(proc.returncode != 0, f"aws kinesis {args[0]} should fail with {code}, exited 0")
    check(f"({code})" in proc.stderr,
          f"aws kinesis {args[0]}: expected ({code}) in stderr, got {proc.stderr.strip()!r}")
    return proc.stderr


def iterator(name, shard, kind, **extra):
    return KINESIS.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType=kind, **extra
    )["ShardIterator"]


def read_all(name, shard="shardId-000000000000", kind="TRIM_HORIZON", **extra):
    """Read a shard from an iterator until a call returns no records (bounded)."""
    it = iterator(name, shard, kind, **extra)
    records = []
    for _ in range(50):
        resp = KINESIS.get_records(ShardIterator=it)
        records.extend(resp["Records"])
        if not resp["Records"]:
            return records
        it = resp["NextShardIterator"]
    raise AssertionError("shard did not drain within 50 GetRecords calls")


def shard_ranges(name):
    shards = KINESIS.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
    return [
        (s["ShardId"], int(s["HashKeyRange"]["StartingHashKey"]),
         int(s["HashKeyRange"]["EndingHashKey"]))
        for s in shards
    ]


def shard_for_hash(ranges, h):
    for sid, lo, hi in ranges:
        if lo <= h <= hi:
            return sid
    raise AssertionError(f"hash {h} is in no shard range {ranges}")


def seq_int(seq):
    check(isinstance(seq, str) and re.fullmatch(r"[0-9]+", seq) is not None,
          f"sequence number must be a decimal string, got {seq!r}")
    return int(seq)


def even_ranges(n):
    step = 2**128 // n
    return [(i * step, MAX_HASH if i == n - 1 else (i + 1) * step - 1) for i in range(n)]


# --------------------------------------------------------------------------- streams


def test_boto3_create_stream_with_shard_count_describe():
    name = make_stream("two", shards=2)
    d = KINESIS.describe_stream(StreamName=name)["StreamDescription"]
    eq(d["StreamName"], name, "StreamName")
    eq(d["StreamARN"], arn_of(name), "StreamARN")
    eq(d["StreamStatus"], "ACTIVE", "StreamStatus")
    eq(d["RetentionPeriodHours"], 24, "RetentionPeriodHours")
    eq(d["HasMoreShards"], False, "HasMoreShards")
    eq(d["StreamModeDetails"]["StreamMode"], "PROVISIONED", "StreamMode")
    check(isinstance(d["StreamCreationTimestamp"], datetime.datetime),
          "StreamCreationTimestamp must parse as a datetime")
    eq([s["ShardId"] for s in d["Shards"]], [shard_id(0), shard_id(1)], "shard ids")
    ranges = [(s["HashKeyRange"]["StartingHashKey"], s["HashKeyRange"]["EndingHashKey"])
              for s in d["Shards"]]
    eq(ranges, [("0", "170141183460469231731687303715884105727"),
                ("170141183460469231731687303715884105728",
                 "340282366920938463463374607431768211455")], "hash key ranges")
    for s in d["Shards"]:
        seq_int(s["SequenceNumberRange"]["StartingSequenceNumber"])
        check("EndingSequenceNumber" not in s["SequenceNumberRange"],
              "an open shard has no EndingSequenceNumber")


def test_boto3_create_stream_without_shard_count_has_4_shards():
    name = make_stream("noshards", shards=None)
    shards = KINESIS.list_shards(StreamName=name)["Shards"]
    eq([s["ShardId"] for s in shards], [shard_id(i) for i in range(4)], "shard ids")
    got = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
           for s in shards]
    eq(got, even_ranges(4), "4 even hash key ranges")
    summary = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(summary["OpenShardCount"], 4, "OpenShardCount")


def test_boto3_describe_stream_summary():
    name = make_stream("summary", shards=3)
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(s["StreamName"], name, "StreamName")
    eq(s["StreamARN"], arn_of(name), "StreamARN")
    eq(s["StreamStatus"], "ACTIVE", "StreamStatus")
    eq(s["RetentionPeriodHours"], 24, "RetentionPeriodHours")
    eq(s["OpenShardCount"], 3, "OpenShardCount")
    eq(s["ConsumerCount"], 0, "ConsumerCount")
    eq(s["EncryptionType"], "NONE", "EncryptionType")
    eq(s["StreamModeDetails"]["StreamMode"], "PROVISIONED", "StreamMode")
    check(isinstance(s["EnhancedMonitoring"], list), "EnhancedMonitoring must be a list")
    check(isinstance(s["StreamCreationTimestamp"], datetime.datetime),
          "StreamCreationTimestamp must parse as a datetime")


def test_boto3_list_streams_with_summaries():
    names = sorted(make_stream(f"list{i}") for i in range(2))
    resp = KINESIS.list_streams()
    check(isinstance(resp["HasMoreStreams"], bool), "HasMoreStreams must be a bool")
    for n in names:
        check(n in resp["StreamNames"], f"{n} missing from StreamNames")
    summaries = {s["StreamName"]: s for s in resp["StreamSummaries"]}
    eq(len(resp["StreamSummaries"]), len(resp["StreamNames"]), "one summary per name")
    for n in names:
        check(n in summaries, f"{n} missing from StreamSummaries")
        s = summaries[n]
        eq(s["StreamARN"], arn_of(n), "summary StreamARN")
        eq(s["StreamStatus"], "ACTIVE", "summary StreamStatus")
        eq(s["StreamModeDetails"]["StreamMode"], "PROVISIONED", "summary StreamMode")
        check(isinstance(s["StreamCreationTimestamp"], datetime.datetime),
              "summary StreamCreationTimestamp must parse as a datetime")
    eq(resp["StreamNames"], sorted(resp["StreamNames"]), "StreamNames in lexicographic order")


def test_boto3_list_streams_paginator_with_limit():
    names = {make_stream(f"page{i}") for i in range(3)}
    pages = list(KINESIS.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}))
    seen = []
    for page in pages:
        check(len(page["StreamNames"]) <= 1, f"page of {len(page['StreamNames'])} names > Limit 1")
        eq([s["StreamName"] for s in page["StreamSummaries"]], page["StreamNames"],
           "summaries match names on a page")
        seen.extend(page["StreamNames"])
    check(len(pages) >= 3, f"expected at least 3 pages with Limit=1, got {len(pages)}")
    eq(len(seen), len(set(seen)), "no stream listed twice across pages")
    missing = names - set(seen)
    check(not missing, f"streams missing from paginated listing: {sorted(missing)}")
    eq(pages[-1]["HasMoreStreams"], False, "HasMoreStreams on the last page")


def test_boto3_list_shards_max_results_and_next_token():
    name = make_stream("lsh", shards=4)
    resp = KINESIS.list_shards(StreamName=name, MaxResults=1)
    ids = [s["ShardId"] for s in resp["Shards"]]
    eq(len(ids), 1, "shards on the first page")
    check("NextToken" in resp, "first page of 4 shards with MaxResults=1 needs a NextToken")
    expect_error("InvalidArgumentException", KINESIS.list_shards,
                 StreamName=name, NextToken=resp["NextToken"])
    for _ in range(10):
        if "NextToken" not in resp:
            break
        resp = KINESIS.list_shards(NextToken=resp["NextToken"], MaxResults=1)
        check(len(resp["Shards"]) <= 1, "page larger than MaxResults")
        ids.extend(s["ShardId"] for s in resp["Shards"])
    eq(ids, [shard_id(i) for i in range(4)], "shards across pages")


def test_boto3_describe_stream_paginator_with_limit():
    name = make_stream("dpage", shards=3)
    first = KINESIS.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    eq([s["ShardId"] for s in first["Shards"]], [shard_id(0), shard_id(1)], "first page")
    eq(first["HasMoreShards"], True, "HasMoreShards on the first page")
    rest = KINESIS.describe_stream(StreamName=name, Limit=2,
                                   ExclusiveStartShardId=shard_id(1))["StreamDescription"]
    eq([s["ShardId"] for s in rest["Shards"]], [shard_id(2)], "after ExclusiveStartShardId")
    eq(rest["HasMoreShards"], False, "HasMoreShards on the last page")
    pages = list(KINESIS.get_paginator("describe_stream").paginate(
        StreamName=name, PaginationConfig={"PageSize": 1}))
    eq([s["ShardId"] for p in pages for s in p["StreamDescription"]["Shards"]],
       [shard_id(i) for i in range(3)], "shards through the paginator")


def test_boto3_list_shards_filter_at_latest():
    name = make_stream("latest", shards=2)
    resp = KINESIS.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})
    eq([s["ShardId"] for s in resp["Shards"]], [shard_id(0), shard_id(1)], "open shards")
    resp = KINESIS.list_shards(StreamName=name, ShardFilter={"Type": "AT_TRIM_HORIZON"})
    eq(len(resp["Shards"]), 2, "shards AT_TRIM_HORIZON")


def test_boto3_delete_stream_then_waiter_not_exists():
    name = make_stream("del")
    KINESIS.delete_stream(StreamName=name)
    KINESIS.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    msg = expect_error("ResourceNotFoundException", KINESIS.describe_stream, StreamName=name)
    eq(msg, f"Stream {name} under account {ACCOUNT} not found.", "message")
    check(name not in KINESIS.list_streams(Limit=10000)["StreamNames"],
          "deleted stream still listed")


def test_boto3_waiter_stream_exists():
    name = unique("wait")
    CREATED.append(name)
    KINESIS.create_stream(StreamName=name, ShardCount=1)
    KINESIS.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})


def test_cli_create_stream_wait_and_describe():
    name = unique("cli")
    CREATED.append(name)
    eq(cli("create-stream", "--stream-name", name, "--shard-count", "2"), None,
       "create-stream output")
    cli("wait", "stream-exists", "--stream-name", name)
    d = cli("describe-stream", "--stream-name", name)["StreamDescription"]
    eq(d["StreamStatus"], "ACTIVE", "StreamStatus")
    eq(d["StreamARN"], arn_of(name), "StreamARN")
    eq([(s["ShardId"], s["HashKeyRange"]["StartingHashKey"], s["HashKeyRange"]["EndingHashKey"])
        for s in d["Shards"]],
       [(shard_id(0), "0", "170141183460469231731687303715884105727"),
        (shard_id(1), "170141183460469231731687303715884105728",
         "340282366920938463463374607431768211455")], "shards")
    s = cli("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    eq(s["OpenShardCount"], 2, "OpenShardCount")
    eq(s["StreamName"], name, "StreamName")


def test_cli_create_stream_without_shard_count():
    name = unique("cli4")
    CREATED.append(name)
    cli("create-stream", "--stream-name", name)
    cli("wait", "stream-exists", "--stream-name", name)
    shards = cli("list-shards", "--stream-name", name)["Shards"]
    eq([s["ShardId"] for s in shards], [shard_id(i) for i in range(4)], "shard ids")


def test_cli_list_streams_paginates():
    names = {make_stream(f"clil{i}") for i in range(2)}
    # --page-size 1 makes the CLI follow NextToken across pages itself.
    out = cli("list-streams", "--page-size", "1")
    missing = names - set(out["StreamNames"])
    check(not missing, f"missing from list-streams: {sorted(missing)}")
    eq(len(out["StreamNames"]), len(set(out["StreamNames"])), "no duplicates")
    summaries = {s["StreamName"] for s in out["StreamSummaries"]}
    check(names <= summaries, "StreamSummaries missing created streams")


def test_cli_list_shards_paging_and_filter():
    name = make_stream("clis", shards=3)
    # The CLI's own paginator resends --stream-name with the token, which Kinesis
    # rejects, so page by hand: --no-paginate with --max-results and --next-token.
    out = cli("list-shards", "--stream-name", name, "--max-results", "1", "--no-paginate")
    ids = [s["ShardId"] for s in out["Shards"]]
    for _ in range(10):
        if not out.get("NextToken"):
            break
        out = cli("list-shards", "--next-token", out["NextToken"], "--max-results", "1",
                  "--no-paginate")
        ids.extend(s["ShardId"] for s in out["Shards"])
    eq(ids, [shard_id(i) for i in range(3)], "shards across pages")
    out = cli("list-shards", "--stream-name", name, "--shard-filter", "Type=AT_LATEST")
    eq(len(out["Shards"]), 3, "AT_LATEST shards")


def test_cli_delete_stream_and_wait_not_exists():
    name = make_stream("clidel")
    eq(cli("delete-stream", "--stream-name", name), None, "delete-stream output")
    cli("wait", "stream-not-exists", "--stream-name", name)
    cli_error("ResourceNotFoundException", "describe-stream-summary", "--stream-name", name)


# --------------------------------------------------------------------------- writes


def test_boto3_put_record_sequence_numbers_increase():
    name = make_stream("seq")
    previous = -1
    for i in range(6):
        resp = KINESIS.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey=f"k{i}")
        eq(resp["ShardId"], shard_id(0), "ShardId")
        seq = seq_int(resp["SequenceNumber"])
        check(seq > previous, f"sequence {seq} not greater than previous {previous}")
        previous = seq


def test_boto3_put_records_batch():
    name = make_stream("batch", shards=2)
    entries = [{"Data": f"data-{i}".encode(), "PartitionKey": f"key-{i}"} for i in range(20)]
    resp = KINESIS.put_records(StreamName=name, Records=entries)
    eq(resp["FailedRecordCount"], 0, "FailedRecordCount")
    eq(len(resp["Records"]), 20, "result entries")
    written = {}
    for entry, result in zip(entries, resp["Records"]):
        check("ErrorCode" not in result, f"record failed: {result}")
        check(result["ShardId"] in (shard_id(0), shard_id(1)), f"bad ShardId {result}")
        seq_int(result["SequenceNumber"])
        written[result["SequenceNumber"]] = (result["ShardId"], entry)
    eq(len(written), 20, "distinct sequence numbers")
    for sid in (shard_id(0), shard_id(1)):
        records = read_all(name, sid)
        seqs = [seq_int(r["SequenceNumber"]) for r in records]
        eq(seqs, sorted(set(seqs)), f"strictly increasing sequence numbers on {sid}")
        for r in records:
            check(r["SequenceNumber"] in written, f"unexpected record {r['SequenceNumber']}")
            wsid, entry = written.pop(r["SequenceNumber"])
            eq(wsid, sid, "record read from the shard PutRecords named")
            eq((r["Data"], r["PartitionKey"]), (entry["Data"], entry["PartitionKey"]), "record")
    check(not written, f"{len(written)} records never read back")


def test_boto3_explicit_hash_key_routing():
    name = make_stream("ehk", shards=2)
    cases = [(0, 0), (HALF - 1, 0), (HALF, 1), (MAX_HASH, 1)]
    for key, want in cases:
        resp = KINESIS.put_record(StreamName=name, Data=b"x", PartitionKey="same-key",
                                  ExplicitHashKey=str(key))
        eq(resp["ShardId"], shard_id(want), f"PutRecord ExplicitHashKey {key}")
    resp = KINESIS.put_records(StreamName=name, Records=[
        {"Data": b"x", "PartitionKey": "same-key", "ExplicitHashKey": str(k)} for k, _ in cases])
    eq([r["ShardId"] for r in resp["Records"]], [shard_id(w) for _, w in cases],
       "PutRecords ExplicitHashKey routing")


def test_boto3_md5_partition_key_routing():
    name = make_stream("md5", shards=4)
    ranges = shard_ranges(name)
    hit = set()
    for i in range(40):
        key = f"partition-{i}"
        want = shard_for_hash(ranges, int(hashlib.md5(key.encode()).hexdigest(), 16))
        got = KINESIS.put_record(StreamName=name, Data=b"m", PartitionKey=key)["ShardId"]
        eq(got, want, f"shard for partition key {key!r}")
        hit.add(got)
    eq(len(hit), 4, "40 keys should reach all 4 shards")
    keys = [f"batch-{i}" for i in range(20)]
    resp = KINESIS.put_records(StreamName=name,
                               Records=[{"Data": b"m", "PartitionKey": k} for k in keys])
    eq([r["ShardId"] for r in resp["Records"]],
       [shard_for_hash(ranges, int(hashlib.md5(k.encode()).hexdigest(), 16)) for k in keys],
       "PutRecords md5 routing")


def test_cli_put_record_and_put_records():
    name = make_stream("cliput")
    out = cli("put-record", "--stream-name", name, "--partition-key", "pk1",
              "--data", "hello from cli")
    eq(out["ShardId"], shard_id(0), "put-record ShardId")
    first = seq_int(out["SequenceNumber"])
    records = json.dumps([{"Data": "batch one", "PartitionKey": "pk2"},
                          {"Data": "batch two", "PartitionKey": "pk3"}])
    out = cli("put-records", "--stream-name", name, "--records", records)
    eq(out["FailedRecordCount"], 0, "FailedRecordCount")
    seqs = [seq_int(r["SequenceNumber"]) for r in out["Records"]]
    check(first < seqs[0] < seqs[1], f"sequence numbers not increasing: {first}, {seqs}")
    got = [(r["Data"], r["PartitionKey"]) for r in read_all(name)]
    eq(got, [(b"hello from cli", "pk1"), (b"batch one", "pk2"), (b"batch two", "pk3")],
       "records read back")


def test_cli_get_shard_iterator_and_get_records():
    name = make_stream("cliget")
    seqs = [KINESIS.put_record(StreamName=name, Data=bytes([i, 0, 255]) * 3,
                               PartitionKey=f"p{i}")["SequenceNumber"] for i in range(3)]
    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    out = cli("get-records", "--shard-iterator", it)
    eq([base64.b64decode(r["Data"]) for r in out["Records"]],
       [bytes([i, 0, 255]) * 3 for i in range(3)], "Data (base64 in CLI output)")
    eq([r["SequenceNumber"] for r in out["Records"]], seqs, "SequenceNumbers")
    eq([r["PartitionKey"] for r in out["Records"]], ["p0", "p1", "p2"], "PartitionKeys")
    check("MillisBehindLatest" in out, "MillisBehindLatest missing")
    check(out["NextShardIterator"] != it, "NextShardIterator must be a new iterator")

    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "AT_SEQUENCE_NUMBER",
             "--starting-sequence-number", seqs[1])["ShardIterator"]
    out = cli("get-records", "--shard-iterator", it, "--limit", "1")
    eq([r["SequenceNumber"] for r in out["Records"]], [seqs[1]], "AT_SEQUENCE_NUMBER, limit 1")

    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "AFTER_SEQUENCE_NUMBER",
             "--starting-sequence-number", seqs[1])["ShardIterator"]
    out = cli("get-records", "--shard-iterator", it)
    eq([r["SequenceNumber"] for r in out["Records"]], [seqs[2]], "AFTER_SEQUENCE_NUMBER")

    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "AT_TIMESTAMP",
             "--timestamp", str(int(time.time()) - 3600))["ShardIterator"]
    out = cli("get-records", "--shard-iterator", it)
    eq([r["SequenceNumber"] for r in out["Records"]], seqs, "AT_TIMESTAMP an hour ago")

    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "LATEST")["ShardIterator"]
    eq(cli("get-records", "--shard-iterator", it)["Records"], [], "LATEST before new writes")


# --------------------------------------------------------------------------- reads


def test_boto3_trim_horizon_reads_byte_exact():
    name = make_stream("bytes")
    payloads = [b"", b"\x00", b"\x00\xff\x10binary\r\n\x80", "ünïcödé ✓".encode(),
                bytes(range(256)), b"plain text"]
    keys = [f"key-{i}" for i in range(len(payloads))]
    keys[3] = "ключ-ü"
    seqs = [KINESIS.put_record(StreamName=name, Data=d, PartitionKey=k)["SequenceNumber"]
            for d, k in zip(payloads, keys)]
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    resp = KINESIS.get_records(ShardIterator=it)
    records = resp["Records"]
    eq([r["Data"] for r in records], payloads, "Data")
    eq([r["PartitionKey"] for r in records], keys, "PartitionKey")
    eq([r["SequenceNumber"] for r in records], seqs, "SequenceNumber")
    before = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=5)
    for r in records:
        ts = r["ApproximateArrivalTimestamp"]
        check(isinstance(ts, datetime.datetime), f"ApproximateArrivalTimestamp {ts!r}")
        check(before - datetime.timedelta(minutes=5) < ts < before,
              f"ApproximateArrivalTimestamp {ts} is not about now")
    check("MillisBehindLatest" in resp, "MillisBehindLatest missing")
    check(isinstance(resp["MillisBehindLatest"], int), "MillisBehindLatest must be an integer")
    check(resp["NextShardIterator"] != it, "NextShardIterator must be a new iterator")


def test_boto3_latest_iterator_sees_only_new_records():
    name = make_stream("latest")
    KINESIS.put_record(StreamName=name, Data=b"old", PartitionKey="k")
    it = iterator(name, shard_id(0), "LATEST")
    resp = KINESIS.get_records(ShardIterator=it)
    eq(resp["Records"], [], "records at LATEST before new writes")
    KINESIS.put_record(StreamName=name, Data=b"new-1", PartitionKey="k")
    KINESIS.put_record(StreamName=name, Data=b"new-2", PartitionKey="k")
    resp = KINESIS.get_records(ShardIterator=resp["NextShardIterator"])
    eq([r["Data"] for r in resp["Records"]], [b"new-1", b"new-2"], "records after LATEST")


def test_boto3_at_and_after_sequence_number():
    name = make_stream("atseq")
    seqs = [KINESIS.put_record(StreamName=name, Data=f"v{i}".encode(),
                               PartitionKey="k")["SequenceNumber"] for i in range(4)]
    got = read_all(name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[1])
    eq([r["Data"] for r in got], [b"v1", b"v2", b"v3"], "AT_SEQUENCE_NUMBER")
    got = read_all(name, kind="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[1])
    eq([r["Data"] for r in got], [b"v2", b"v3"], "AFTER_SEQUENCE_NUMBER")
    got = read_all(name, kind="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[3])
    eq(got, [], "AFTER_SEQUENCE_NUMBER of the last record")


def test_boto3_at_timestamp():
    name = make_stream("atts")
    KINESIS.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    time.sleep(1.2)
    boundary = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.2)
    KINESIS.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    got = read_all(name, kind="AT_TIMESTAMP", Timestamp=boundary)
    eq([r["Data"] for r in got], [b"after"], "records at or after the boundary")
    got = read_all(name, kind="AT_TIMESTAMP",
                   Timestamp=boundary - datetime.timedelta(hours=1))
    eq([r["Data"] for r in got], [b"before", b"after"], "records since an hour ago")


def test_boto3_get_records_limit():
    name = make_stream("limit")
    for i in range(5):
        KINESIS.put_record(StreamName=name, Data=f"{i}".encode(), PartitionKey="k")
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    sizes = []
    data = []
    for _ in range(3):
        resp = KINESIS.get_records(ShardIterator=it, Limit=2)
        sizes.append(len(resp["Records"]))
        data.extend(r["Data"] for r in resp["Records"])
        it = resp["NextShardIterator"]
    eq(sizes, [2, 2, 1], "records per call with Limit=2")
    eq(data, [b"0", b"1", b"2", b"3", b"4"], "records in order")
    eq(resp["MillisBehindLatest"], 0, "MillisBehindLatest once caught up")


def test_boto3_next_shard_iterator_always_new():
    name = make_stream("newit")
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    seen = {it}
    for i in range(4):
        if i == 2:
            KINESIS.put_record(StreamName=name, Data=b"x", PartitionKey="k")
        resp = KINESIS.get_records(ShardIterator=it)
        nxt = resp["NextShardIterator"]
        check(nxt not in seen, f"call {i}: NextShardIterator repeats an earlier iterator")
        seen.add(nxt)
        it = nxt


def test_boto3_iterator_is_reusable():
    """A shard iterator may be used again: the same call returns the same records."""
    name = make_stream("reuse")
    KINESIS.put_record(StreamName=name, Data=b"a", PartitionKey="k")
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    first = [r["Data"] for r in KINESIS.get_records(ShardIterator=it)["Records"]]
    again = [r["Data"] for r in KINESIS.get_records(ShardIterator=it)["Records"]]
    eq((first, again), ([b"a"], [b"a"]), "records from the same iterator twice")


# --------------------------------------------------------------------------- retention, tags, limits, ARNs


def test_boto3_retention_increase_and_decrease():
    name = make_stream("ret")
    KINESIS.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["RetentionPeriodHours"], 48, "retention after increase")
    msg = expect_error("InvalidArgumentException", KINESIS.increase_stream_retention_period,
                       StreamName=name, RetentionPeriodHours=36)
    eq(msg, f"Requested retention period (36 hours) for stream {name} can not be shorter than "
            "existing retention period (48 hours). Use DecreaseRetentionPeriod API.",
       "increase below current")
    msg = expect_error("InvalidArgumentException", KINESIS.decrease_stream_retention_period,
                       StreamName=name, RetentionPeriodHours=72)
    eq(msg, f"Requested retention period (72 hours) for stream {name} can not be longer than "
            "existing retention period (48 hours). Use IncreaseRetentionPeriod API.",
       "decrease above current")
    msg = expect_error("InvalidArgumentException", KINESIS.decrease_stream_retention_period,
                       StreamName=name, RetentionPeriodHours=23)
    eq(msg, "Minimum allowed retention period is 24 hours. Requested retention period "
            "(23 hours) is too short.", "decrease below minimum")
    msg = expect_error("InvalidArgumentException", KINESIS.increase_stream_retention_period,
                       StreamName=name, RetentionPeriodHours=8761)
    eq(msg, "Maximum allowed retention period is 8760 hours. Requested retention period "
            "(8761 hours) is too long.", "increase above maximum")
    KINESIS.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    eq(KINESIS.describe_stream(StreamName=name)["StreamDescription"]["RetentionPeriodHours"],
       24, "retention after decrease")


def test_cli_retention():
    name = make_stream("cliret")
    cli("increase-stream-retention-period", "--stream-name", name,
        "--retention-period-hours", "168")
    s = cli("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    eq(s["RetentionPeriodHours"], 168, "retention after increase")
    err = cli_error("InvalidArgumentException", "decrease-stream-retention-period",
                    "--stream-name", name, "--retention-period-hours", "200")
    check("can not be longer than existing retention period (168 hours)" in err,
          f"unexpected message: {err.strip()!r}")
    cli("decrease-stream-retention-period", "--stream-name", name,
        "--retention-period-hours", "25")
    s = cli("describe-stream", "--stream-name", name)["StreamDescription"]
    eq(s["RetentionPeriodHours"], 25, "retention after decrease")


def test_boto3_stream_tags():
    name = make_stream("tags")
    KINESIS.add_tags_to_stream(StreamName=name, Tags={"env": "test", "team": "data", "x": ""})
    resp = KINESIS.list_tags_for_stream(StreamName=name)
    eq({t["Key"]: t["Value"] for t in resp["Tags"]}, {"env": "test", "team": "data", "x": ""},
       "tags")
    eq(resp["HasMoreTags"], False, "HasMoreTags")
    page = KINESIS.list_tags_for_stream(StreamName=name, Limit=1)
    eq(len(page["Tags"]), 1, "tags with Limit=1")
    eq(page["HasMoreTags"], True, "HasMoreTags with Limit=1")
    rest = KINESIS.list_tags_for_stream(StreamName=name,
                                        ExclusiveStartTagKey=page["Tags"][0]["Key"])
    eq(sorted(t["Key"] for t in page["Tags"] + rest["Tags"]), ["env", "team", "x"],
       "tags across ExclusiveStartTagKey pages")
    KINESIS.add_tags_to_stream(StreamName=name, Tags={"env": "prod"})
    KINESIS.remove_tags_from_stream(StreamName=name, TagKeys=["team", "x"])
    resp = KINESIS.list_tags_for_stream(StreamName=name)
    eq(resp["Tags"], [{"Key": "env", "Value": "prod"}], "tags after overwrite and removal")


def test_boto3_resource_tags_by_arn():
    name = make_stream("rtags")
    arn = arn_of(name)
    KINESIS.tag_resource(ResourceARN=arn, Tags={"owner": "alice", "tier": "gold"})
    tags = KINESIS.list_tags_for_resource(ResourceARN=arn)["Tags"]
    eq({t["Key"]: t["Value"] for t in tags}, {"owner": "alice", "tier": "gold"},
       "tags by ARN")
    by_name = KINESIS.list_tags_for_stream(StreamName=name)["Tags"]
    eq({t["Key"] for t in by_name}, {"owner", "tier"}, "the same tags by stream name")
    KINESIS.untag_resource(ResourceARN=arn, TagKeys=["owner"])
    eq(KINESIS.list_tags_for_resource(ResourceARN=arn)["Tags"],
       [{"Key": "tier", "Value": "gold"}], "tags after untag")
    missing = arn_of(unique("missing"))
    expect_error("ResourceNotFoundException", KINESIS.list_tags_for_resource,
                 ResourceARN=missing)


def test_cli_tags():
    name = make_stream("clitags")
    cli("add-tags-to-stream", "--stream-name", name, "--tags", "a=1,b=2")
    out = cli("list-tags-for-stream", "--stream-name", name)
    eq(sorted((t["Key"], t["Value"]) for t in out["Tags"]), [("a", "1"), ("b", "2")], "tags")
    cli("remove-tags-from-stream", "--stream-name", name, "--tag-keys", "a")
    cli("tag-resource", "--resource-arn", arn_of(name), "--tags", "c=3")
    out = cli("list-tags-for-resource", "--resource-arn", arn_of(name))
    eq(sorted((t["Key"], t["Value"]) for t in out["Tags"]), [("b", "2"), ("c", "3")],
       "tags by ARN")
    cli("untag-resource", "--resource-arn", arn_of(name), "--tag-keys", "b", "c")
    eq(cli("list-tags-for-stream", "--stream-name", name)["Tags"], [], "tags after untag")


def test_boto3_describe_limits():
    before = KINESIS.describe_limits()
    for key in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount",
                "OnDemandStreamCountLimit"):
        check(isinstance(before.get(key), int), f"{key} missing or not an integer: {before}")
    eq(before["ShardLimit"], 500, "ShardLimit (server default --shard-limit)")
    make_stream("limits", shards=3)
    after = KINESIS.describe_limits()
    eq(after["OpenShardCount"], before["OpenShardCount"] + 3, "OpenShardCount after +3 shards")


def test_cli_describe_limits():
    out = cli("describe-limits")
    check(isinstance(out.get("ShardLimit"), int), f"ShardLimit missing: {out}")
    check(isinstance(out.get("OpenShardCount"), int), f"OpenShardCount missing: {out}")


def test_boto3_stream_arn_instead_of_name():
    name = make_stream("arn", shards=2)
    arn = arn_of(name)
    d = KINESIS.describe_stream(StreamARN=arn)["StreamDescription"]
    eq(d["StreamName"], name, "describe_stream by ARN")
    s = KINESIS.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
    eq(s["StreamName"], name, "describe_stream_summary by ARN")
    put = KINESIS.put_record(StreamARN=arn, Data=b"via-arn", PartitionKey="k",
                             ExplicitHashKey="0")
    eq(put["ShardId"], shard_id(0), "put_record by ARN")
    batch = KINESIS.put_records(StreamARN=arn, Records=[
        {"Data": b"batch-arn", "PartitionKey": "k", "ExplicitHashKey": "0"}])
    eq(batch["FailedRecordCount"], 0, "put_records by ARN")
    eq(len(KINESIS.list_shards(StreamARN=arn)["Shards"]), 2, "list_shards by ARN")
    it = KINESIS.get_shard_iterator(StreamARN=arn, ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = KINESIS.get_records(StreamARN=arn, ShardIterator=it)["Records"]
    eq([r["Data"] for r in got], [b"via-arn", b"batch-arn"], "get_records by ARN")
    KINESIS.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=30)
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["RetentionPeriodHours"], 30, "retention changed by ARN")


# --------------------------------------------------------------------------- errors


def test_boto3_resource_not_found():
    name = unique("absent")
    want = f"Stream {name} under account {ACCOUNT} not found."
    eq(expect_error("ResourceNotFoundException", KINESIS.describe_stream, StreamName=name),
       want, "describe_stream message")
    eq(expect_error("ResourceNotFoundException", KINESIS.put_record, StreamName=name,
                    Data=b"x", PartitionKey="k"), want, "put_record message")
    expect_error("ResourceNotFoundException", KINESIS.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON")
    expect_error("ResourceNotFoundException", KINESIS.delete_stream, StreamName=name)


def test_boto3_missing_shard_is_resource_not_found():
    name = make_stream("noshard")
    msg = expect_error("ResourceNotFoundException", KINESIS.get_shard_iterator,
                       StreamName=name, ShardId=shard_id(9), ShardIteratorType="LATEST")
    check(shard_id(9) in msg, f"message should name the shard: {msg!r}")


def test_boto3_resource_in_use():
    name = make_stream("dup")
    msg = expect_error("ResourceInUseException", KINESIS.create_stream,
                       StreamName=name, ShardCount=1)
    eq(msg, f"Stream {name} under account {ACCOUNT} already exists.", "message")


def test_boto3_validation_bad_stream_name():
    msg = expect_error("ValidationException", KINESIS.create_stream,
                       StreamName="bad name", ShardCount=1)
    eq(msg, "1 validation error detected: Value 'bad name' at 'streamName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
       "message")


def test_boto3_at_sequence_number_without_starting_sequence_number():
    name = make_stream("noseq")
    msg = expect_error("InvalidArgumentException", KINESIS.get_shard_iterator,
                       StreamName=name, ShardId=shard_id(0),
                       ShardIteratorType="AT_SEQUENCE_NUMBER")
    check("StartingSequenceNumber" in msg, f"message should mention StartingSequenceNumber: "
                                           f"{msg!r}")
    expect_error("InvalidArgumentException", KINESIS.get_shard_iterator,
                 StreamName=name, ShardId=shard_id(0), ShardIteratorType="TRIM_HORIZON",
                 StartingSequenceNumber="49000000000000000000000000000000000000000000000000")


def test_boto3_invalid_iterator_string():
    msg = expect_error("InvalidArgumentException", KINESIS.get_records,
                       ShardIterator="not-a-real-iterator")
    check(msg, "InvalidArgumentException should carry a message")


def test_boto3_put_records_over_500_is_validation_error():
    name = make_stream("over500")
    msg = expect_error("ValidationException", KINESIS.put_records, StreamName=name,
                       Records=[{"Data": b"x", "PartitionKey": "k"}] * 501)
    check("500" in msg, f"message should state the 500 limit: {msg!r}")


def test_boto3_model_constraints_are_validation_errors():
    name = make_stream("constraints")
    msg = expect_error("ValidationException", KINESIS.put_record, StreamName=name,
                       Data=b"x", PartitionKey="p" * 257)
    check("partitionKey" in msg and "256" in msg, f"unexpected message: {msg!r}")
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    msg = expect_error("ValidationException", KINESIS.get_records, ShardIterator=it,
                       Limit=10001)
    check("limit" in msg and "10000" in msg, f"unexpected message: {msg!r}")
    expect_error("ValidationException", KINESIS.describe_stream, StreamName="x" * 129)


def test_boto3_out_of_range_explicit_hash_key():
    name = make_stream("ehkrange")
    expect_error("InvalidArgumentException", KINESIS.put_record, StreamName=name,
                 Data=b"x", PartitionKey="k", ExplicitHashKey=str(2**128))


def test_boto3_invalid_starting_sequence_number():
    name = make_stream("badseq")
    expect_error("InvalidArgumentException", KINESIS.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="AT_SEQUENCE_NUMBER",
                 StartingSequenceNumber="123")


def test_cli_errors():
    name = unique("cliabsent")
    err = cli_error("ResourceNotFoundException", "describe-stream", "--stream-name", name)
    check(f"Stream {name} under account {ACCOUNT} not found." in err,
          f"unexpected message: {err.strip()!r}")
    existing = make_stream("clidup")
    cli_error("ResourceInUseException", "create-stream", "--stream-name", existing,
              "--shard-count", "1")
    cli_error("ValidationException", "create-stream", "--stream-name", "bad name",
              "--shard-count", "1")
    cli_error("InvalidArgumentException", "get-shard-iterator", "--stream-name", existing,
              "--shard-id", shard_id(0), "--shard-iterator-type", "AFTER_SEQUENCE_NUMBER")


# --------------------------------------------------------------------------- sizes


def test_boto3_one_mib_record_round_trips():
    name = make_stream("big")
    key = "large-record-key"
    data = os.urandom(ONE_MIB - len(key))
    resp = KINESIS.put_record(StreamName=name, Data=data, PartitionKey=key)
    seq_int(resp["SequenceNumber"])
    records = read_all(name)
    eq(len(records), 1, "records read")
    check(records[0]["Data"] == data, "1 MiB record data differs after the round trip")
    eq(records[0]["PartitionKey"], key, "PartitionKey")


def test_boto3_put_records_500():
    name = make_stream("five", shards=2)
    entries = [{"Data": f"payload-{i:03d}".encode(), "PartitionKey": f"pk-{i}"}
               for i in range(500)]
    resp = KINESIS.put_records(StreamName=name, Records=entries)
    eq(resp["FailedRecordCount"], 0, "FailedRecordCount")
    eq(len(resp["Records"]), 500, "result entries")
    check(all("SequenceNumber" in r and "ShardId" in r for r in resp["Records"]),
          "every entry needs ShardId and SequenceNumber")
    got = read_all(name, shard_id(0)) + read_all(name, shard_id(1))
    eq(sorted(r["Data"] for r in got), sorted(e["Data"] for e in entries), "records read back")


# --------------------------------------------------------------------------- runner


def main():
    global ENDPOINT, AWS_CLI, KINESIS, RIVULET_BIN
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", default=os.environ.get("RIVULET_ENDPOINT"))
    parser.add_argument("--counts-file")
    parser.add_argument("-k", dest="filter", default="")
    parser.add_argument("--rivulet-bin", default=os.environ.get("RIVULET_BIN"),
                        help="server binary for the limits-on server of test_limits_*")
    args = parser.parse_args()
    if not args.endpoint:
        parser.error("--endpoint (or $RIVULET_ENDPOINT) is required")
    ENDPOINT = args.endpoint
    RIVULET_BIN = os.path.abspath(args.rivulet_bin) if args.rivulet_bin else None
    # `timeout` stops the suite with SIGTERM: exit through `finally`, which stops the
    # limits-on server.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    AWS_CLI = os.environ.get("AWS_CLI") or os.path.join(os.path.dirname(sys.executable), "aws")
    KINESIS = boto3.client(
        "kinesis", endpoint_url=ENDPOINT, region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "max_attempts": 1},
                      connect_timeout=5, read_timeout=60))

    tests = sorted(
        (f for n, f in globals().items() if n.startswith("test_") and callable(f)),
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
                cleanup_streams()
    finally:
        stop_limited_server(show_log=failed > 0)
    print(f"python: {passed} passed, {failed} failed", flush=True)
    if args.counts_file:
        with open(args.counts_file, "w") as f:
            f.write(f"{passed} {failed}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
