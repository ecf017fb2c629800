#!/usr/bin/env python3
"""Rivulet conformance tests through real AWS clients: boto3 and the AWS CLI (v1).

No pytest: the runner of harness.py (shared with test_cloudwatch.py) runs every top-level
``test_*`` function in file order; each prints ``ok NAME`` or ``FAIL NAME: reason``. The
closing line is ``python: N passed, M failed``; with ``--counts-file PATH`` the counts are
also written there as ``N M`` for scripts/test-clients.sh.

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

import base64
import datetime
import hashlib
import json
import os
import re
import sys
import time

from botocore.exceptions import ClientError

import harness
from harness import (ACCOUNT, HALF, LIMITED, burst, check, client, delete_streams, eq, shard_id,
                     unique)
from harness import stream_arn as arn_of

MAX_HASH = 2**128 - 1
ONE_MIB = 1024 * 1024

KINESIS = None  # boto3 client, set in main()
CREATED = []  # stream names created by the current test; deleted after it
LIMITED_CREATED = []  # the same on the limits-on server (harness.LIMITED)

# The shard-level metrics of enhanced monitoring, as Kinesis lists them.
ALL_METRICS = ["IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
               "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
               "IteratorAgeMilliseconds"]


# --------------------------------------------------------------------------- helpers


def wait_active(name, timeout=10.0):
    harness.wait_active(name, KINESIS, timeout=timeout)


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
    delete_streams(KINESIS, CREATED)
    delete_streams(LIMITED.get("kinesis"), LIMITED_CREATED)


def expect_error(code, fn, **kwargs):
    """Call fn(**kwargs), which must fail with error code `code` and HTTP 400; return the
    message."""
    return harness.expect_error(code, fn, status=400, **kwargs)


def cli(*args, **kw):
    """Run `aws kinesis ARGS` against --endpoint (or `endpoint`); it must succeed. Returns the
    parsed JSON output (or None). `max_attempts` sets AWS_MAX_ATTEMPTS, e.g. 1 so that the
    CLI does not retry LimitExceededException."""
    return harness.cli("kinesis", *args, **kw)


def cli_error(code, *args, **kw):
    """Run `aws kinesis ARGS`; it must fail with service error `code`. Returns stderr."""
    return harness.cli_error(code, "kinesis", *args, **kw)


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


# --------------------------------------------------------------------------- resharding


def open_shard_ids(name):
    return [s["ShardId"] for s in
            KINESIS.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]]


def hash_range(shard):
    return (int(shard["HashKeyRange"]["StartingHashKey"]),
            int(shard["HashKeyRange"]["EndingHashKey"]))


def read_closed(name, shard):
    """Read a closed shard from TRIM_HORIZON until GetRecords returns no NextShardIterator.
    Returns (records, the last response)."""
    it = iterator(name, shard, "TRIM_HORIZON")
    records = []
    for _ in range(50):
        resp = KINESIS.get_records(ShardIterator=it)
        records.extend(resp["Records"])
        it = resp.get("NextShardIterator")
        if it is None:
            return records, resp
    raise AssertionError(f"closed shard {shard} still has a NextShardIterator after 50 calls")


def child_shards(resp):
    return sorted(((c["ShardId"], sorted(c["ParentShards"]), hash_range(c))
                   for c in resp.get("ChildShards", [])))


def test_boto3_split_shard():
    name = make_stream("split")
    pre = [KINESIS.put_record(StreamName=name, Data=f"pre-{i}".encode(), PartitionKey="k",
                              ExplicitHashKey=str(h))["SequenceNumber"]
           for i, h in enumerate((0, MAX_HASH))]
    resp = KINESIS.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                               NewStartingHashKey=str(HALF))
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {}, "SplitShard output")
    wait_active(name)
    shards = {s["ShardId"]: s
              for s in KINESIS.describe_stream(StreamName=name)["StreamDescription"]["Shards"]}
    eq(sorted(shards), [shard_id(0), shard_id(1), shard_id(2)], "shards after the split")
    parent = shards[shard_id(0)]
    eq(hash_range(parent), (0, MAX_HASH), "the parent keeps its hash key range")
    check("EndingSequenceNumber" in parent["SequenceNumberRange"],
          f"the split parent needs an EndingSequenceNumber: {parent['SequenceNumberRange']}")
    end = seq_int(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    check(end >= seq_int(pre[-1]),
          f"parent EndingSequenceNumber {end} is below its last record {pre[-1]}")
    for sid, want in ((shard_id(1), (0, HALF - 1)), (shard_id(2), (HALF, MAX_HASH))):
        child = shards[sid]
        eq(child.get("ParentShardId"), shard_id(0), f"{sid} ParentShardId")
        check("AdjacentParentShardId" not in child,
              f"{sid}: a split child has no AdjacentParentShardId")
        eq(hash_range(child), want, f"{sid} hash key range")
        check("EndingSequenceNumber" not in child["SequenceNumberRange"], f"{sid} must be open")
        check(seq_int(child["SequenceNumberRange"]["StartingSequenceNumber"]) > end,
              f"{sid} must start after the parent's EndingSequenceNumber")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["OpenShardCount"], 2, "OpenShardCount after the split")
    eq(open_shard_ids(name), [shard_id(1), shard_id(2)], "list_shards AT_LATEST")
    eq(len(KINESIS.list_shards(StreamName=name)["Shards"]), 3, "list_shards without a filter")

    # Writes now route to the children.
    for data, key, want in ((b"low", 0, 1), (b"high", MAX_HASH, 2)):
        got = KINESIS.put_record(StreamName=name, Data=data, PartitionKey="k",
                                 ExplicitHashKey=str(key))["ShardId"]
        eq(got, shard_id(want), f"PutRecord ExplicitHashKey {key} after the split")
    batch = KINESIS.put_records(StreamName=name, Records=[
        {"Data": b"b-low", "PartitionKey": "k", "ExplicitHashKey": str(HALF - 1)},
        {"Data": b"b-high", "PartitionKey": "k", "ExplicitHashKey": str(HALF)}])
    eq([r.get("ShardId") for r in batch["Records"]], [shard_id(1), shard_id(2)],
       "PutRecords after the split")
    key = "routed-by-md5"
    want = shard_id(1) if int(hashlib.md5(key.encode()).hexdigest(), 16) < HALF else shard_id(2)
    eq(KINESIS.put_record(StreamName=name, Data=b"md5", PartitionKey=key)["ShardId"], want,
       "partition key routed to the child holding its hash")

    # The closed parent: its records, then no NextShardIterator, and its ChildShards.
    records, last = read_closed(name, shard_id(0))
    eq([r["Data"] for r in records], [b"pre-0", b"pre-1"], "records in the parent")
    eq(child_shards(last), [(shard_id(1), [shard_id(0)], (0, HALF - 1)),
                            (shard_id(2), [shard_id(0)], (HALF, MAX_HASH))],
       "ChildShards at the end of the parent")
    low = [r["Data"] for r in read_all(name, shard_id(1))]
    high = [r["Data"] for r in read_all(name, shard_id(2))]
    eq(sorted(low + high), sorted([b"low", b"high", b"b-low", b"b-high", b"md5"]),
       "records in the children")
    eq([d for d in low if d != b"md5"], [b"low", b"b-low"], "records in the low child")
    eq([d for d in high if d != b"md5"], [b"high", b"b-high"], "records in the high child")

    msg = expect_error("InvalidArgumentException", KINESIS.split_shard, StreamName=name,
                       ShardToSplit=shard_id(1), NewStartingHashKey=str(HALF + 5))
    check("NewStartingHashKey" in msg, f"message should name NewStartingHashKey: {msg!r}")


def test_boto3_merge_shards():
    name = make_stream("merge", shards=3)
    ranges = shard_ranges(name)
    msg = expect_error("InvalidArgumentException", KINESIS.merge_shards, StreamName=name,
                       ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(2))
    check("adjacent" in msg, f"message should say the shards are not adjacent: {msg!r}")
    eq(KINESIS.put_record(StreamName=name, Data=b"pre", PartitionKey="k",
                          ExplicitHashKey=str(ranges[1][1]))["ShardId"], shard_id(1),
       "record before the merge")
    resp = KINESIS.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                                AdjacentShardToMerge=shard_id(1))
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {}, "MergeShards output")
    wait_active(name)
    shards = {s["ShardId"]: s for s in KINESIS.list_shards(StreamName=name)["Shards"]}
    eq(sorted(shards), [shard_id(i) for i in range(4)], "shards after the merge")
    child = shards[shard_id(3)]
    eq((child.get("ParentShardId"), child.get("AdjacentParentShardId")),
       (shard_id(0), shard_id(1)), "ParentShardId and AdjacentParentShardId of the merged shard")
    eq(hash_range(child), (ranges[0][1], ranges[1][2]), "merged hash key range")
    check("EndingSequenceNumber" not in child["SequenceNumberRange"], "merged shard is open")
    for sid in (shard_id(0), shard_id(1)):
        check("EndingSequenceNumber" in shards[sid]["SequenceNumberRange"],
              f"merged parent {sid} needs an EndingSequenceNumber")
    check("EndingSequenceNumber" not in shards[shard_id(2)]["SequenceNumberRange"],
          "the untouched shard stays open")
    eq(open_shard_ids(name), [shard_id(2), shard_id(3)], "list_shards AT_LATEST")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["OpenShardCount"], 2, "OpenShardCount after the merge")
    for key in (0, ranges[1][2]):
        eq(KINESIS.put_record(StreamName=name, Data=b"post", PartitionKey="k",
                              ExplicitHashKey=str(key))["ShardId"], shard_id(3),
           f"PutRecord ExplicitHashKey {key} after the merge")
    for sid, want in ((shard_id(0), []), (shard_id(1), [b"pre"])):
        records, last = read_closed(name, sid)
        eq([r["Data"] for r in records], want, f"records in {sid}")
        eq(child_shards(last), [(shard_id(3), [shard_id(0), shard_id(1)],
                                 (ranges[0][1], ranges[1][2]))], f"ChildShards of {sid}")
    eq([r["Data"] for r in read_all(name, shard_id(3))], [b"post", b"post"],
       "records in the merged shard")


def test_boto3_update_shard_count_uniform_scaling():
    name = make_stream("scale", shards=2)
    resp = KINESIS.update_shard_count(StreamName=name, TargetShardCount=4,
                                      ScalingType="UNIFORM_SCALING")
    eq((resp["StreamName"], resp["CurrentShardCount"], resp["TargetShardCount"]),
       (name, 2, 4), "UpdateShardCount output")
    wait_active(name)
    latest = KINESIS.list_shards(StreamName=name, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    eq(sorted(hash_range(s) for s in latest), even_ranges(4), "4 even open hash key ranges")
    for s in latest:
        check("EndingSequenceNumber" not in s["SequenceNumberRange"],
              f"AT_LATEST returned closed shard {s['ShardId']}")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["OpenShardCount"], 4, "OpenShardCount after 2 -> 4")
    everything = {s["ShardId"]: s for s in KINESIS.list_shards(StreamName=name)["Shards"]}
    for sid in (shard_id(0), shard_id(1)):
        check("EndingSequenceNumber" in everything[sid]["SequenceNumberRange"],
              f"original shard {sid} must be closed")
    by_range = {hash_range(s): s["ShardId"] for s in latest}
    for lo, hi in even_ranges(4):
        for key in (lo, hi):
            got = KINESIS.put_record(StreamName=name, Data=b"x", PartitionKey="k",
                                     ExplicitHashKey=str(key))["ShardId"]
            eq(got, by_range[(lo, hi)], f"PutRecord ExplicitHashKey {key}")
    msg = expect_error("LimitExceededException", KINESIS.update_shard_count, StreamName=name,
                       TargetShardCount=9, ScalingType="UNIFORM_SCALING")
    check(msg, "LimitExceededException should carry a message")
    expect_error("LimitExceededException", KINESIS.update_shard_count, StreamName=name,
                 TargetShardCount=1, ScalingType="UNIFORM_SCALING")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["OpenShardCount"], 4, "OpenShardCount after refused updates")


def test_cli_split_merge_and_update_shard_count():
    name = make_stream("clireshard", shards=2)
    quarter = 2**126
    cli_error("InvalidArgumentException", "merge-shards", "--stream-name", name,
              "--shard-to-merge", shard_id(0), "--adjacent-shard-to-merge", shard_id(0))
    eq(cli("split-shard", "--stream-name", name, "--shard-to-split", shard_id(0),
           "--new-starting-hash-key", str(quarter)), None, "split-shard output")
    wait_active(name)
    shards = cli("list-shards", "--stream-name", name,
                 "--shard-filter", "Type=AT_LATEST")["Shards"]
    eq([(s["ShardId"], s.get("ParentShardId"), hash_range(s)) for s in shards],
       [(shard_id(1), None, (HALF, MAX_HASH)),
        (shard_id(2), shard_id(0), (0, quarter - 1)),
        (shard_id(3), shard_id(0), (quarter, HALF - 1))], "open shards after split-shard")
    eq(cli("merge-shards", "--stream-name", name, "--shard-to-merge", shard_id(2),
           "--adjacent-shard-to-merge", shard_id(3)), None, "merge-shards output")
    wait_active(name)
    shards = cli("list-shards", "--stream-name", name,
                 "--shard-filter", "Type=AT_LATEST")["Shards"]
    eq([(s["ShardId"], s.get("ParentShardId"), s.get("AdjacentParentShardId"), hash_range(s))
        for s in shards],
       [(shard_id(1), None, None, (HALF, MAX_HASH)),
        (shard_id(4), shard_id(2), shard_id(3), (0, HALF - 1))], "open shards after merge-shards")
    out = cli("update-shard-count", "--stream-name", name, "--target-shard-count", "4",
              "--scaling-type", "UNIFORM_SCALING")
    eq((out["CurrentShardCount"], out["TargetShardCount"]), (2, 4), "update-shard-count output")
    wait_active(name)
    shards = cli("list-shards", "--stream-name", name,
                 "--shard-filter", "Type=AT_LATEST")["Shards"]
    eq(sorted(hash_range(s) for s in shards), even_ranges(4), "open shards after 2 -> 4")
    cli_error("LimitExceededException", "update-shard-count", "--stream-name", name,
              "--target-shard-count", "9", "--scaling-type", "UNIFORM_SCALING",
              max_attempts=1)


# --------------------------------------------------------------------------- encryption


def test_boto3_stream_encryption():
    name = make_stream("kms")
    plain = KINESIS.put_record(StreamName=name, Data=b"before", PartitionKey="k")
    check("EncryptionType" not in plain, "PutRecord on an unencrypted stream returned "
                                         f"EncryptionType {plain.get('EncryptionType')!r}")
    resp = KINESIS.start_stream_encryption(StreamName=name, EncryptionType="KMS",
                                           KeyId="alias/aws/kinesis")
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {},
       "StartStreamEncryption output")
    wait_active(name)
    d = KINESIS.describe_stream(StreamName=name)["StreamDescription"]
    eq((d.get("EncryptionType"), d.get("KeyId")), ("KMS", "alias/aws/kinesis"),
       "describe_stream EncryptionType and KeyId")
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq((s.get("EncryptionType"), s.get("KeyId")), ("KMS", "alias/aws/kinesis"),
       "describe_stream_summary EncryptionType and KeyId")
    payload = bytes(range(256)) * 64 + b"\x00secret\xff"
    put = KINESIS.put_record(StreamName=name, Data=payload, PartitionKey="k")
    eq(put.get("EncryptionType"), "KMS", "PutRecord EncryptionType")
    batch = KINESIS.put_records(StreamName=name,
                                Records=[{"Data": b"batch", "PartitionKey": "k"}])
    eq(batch.get("EncryptionType"), "KMS", "PutRecords EncryptionType")
    eq(batch["FailedRecordCount"], 0, "FailedRecordCount")

    msg = expect_error("KMSNotFoundException", KINESIS.start_stream_encryption,
                       StreamName=name, EncryptionType="KMS", KeyId="alias/nope")
    check(msg, "KMSNotFoundException should carry a message")
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq((s.get("EncryptionType"), s.get("KeyId")), ("KMS", "alias/aws/kinesis"),
       "encryption after the refused key change")

    KINESIS.stop_stream_encryption(StreamName=name, EncryptionType="KMS",
                                   KeyId="alias/aws/kinesis")
    wait_active(name)
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(s.get("EncryptionType"), "NONE", "EncryptionType after stop")
    check("KeyId" not in s, f"KeyId after stop: {s.get('KeyId')!r}")
    after = KINESIS.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    check("EncryptionType" not in after,
          f"PutRecord after stop returned EncryptionType {after.get('EncryptionType')!r}")
    batch = KINESIS.put_records(StreamName=name, Records=[{"Data": b"b2", "PartitionKey": "k"}])
    check("EncryptionType" not in batch,
          f"PutRecords after stop returned EncryptionType {batch.get('EncryptionType')!r}")

    records = read_all(name)
    eq([r["Data"] for r in records], [b"before", payload, b"batch", b"after", b"b2"],
       "records read back byte-exact")
    eq([r.get("EncryptionType") for r in records], [None, "KMS", "KMS", None, None],
       "EncryptionType of each record")


def test_cli_stream_encryption():
    name = make_stream("clikms")
    eq(cli("start-stream-encryption", "--stream-name", name, "--encryption-type", "KMS",
           "--key-id", "alias/aws/kinesis"), None, "start-stream-encryption output")
    wait_active(name)
    s = cli("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    eq((s.get("EncryptionType"), s.get("KeyId")), ("KMS", "alias/aws/kinesis"), "encryption")
    out = cli("put-record", "--stream-name", name, "--partition-key", "k",
              "--data", "sealed via cli")
    eq(out.get("EncryptionType"), "KMS", "put-record EncryptionType")
    it = cli("get-shard-iterator", "--stream-name", name, "--shard-id", shard_id(0),
             "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    got = cli("get-records", "--shard-iterator", it)["Records"]
    eq([(base64.b64decode(r["Data"]), r.get("EncryptionType")) for r in got],
       [(b"sealed via cli", "KMS")], "get-records")
    err = cli_error("KMSNotFoundException", "start-stream-encryption", "--stream-name", name,
                    "--encryption-type", "KMS", "--key-id", "alias/nope")
    check("alias/nope" in err, f"message should name the key: {err.strip()!r}")
    eq(cli("stop-stream-encryption", "--stream-name", name, "--encryption-type", "KMS",
           "--key-id", "alias/aws/kinesis"), None, "stop-stream-encryption output")
    wait_active(name)
    out = cli("put-record", "--stream-name", name, "--partition-key", "k", "--data", "plain")
    check("EncryptionType" not in out, f"put-record after stop: {out}")


# --------------------------------------------------------------------------- stream settings


def test_boto3_enhanced_monitoring():
    name = make_stream("mon")
    resp = KINESIS.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
    eq(resp["StreamName"], name, "StreamName")
    eq(resp["CurrentShardLevelMetrics"], [], "CurrentShardLevelMetrics before")
    eq(len(resp["DesiredShardLevelMetrics"]), 7, "DesiredShardLevelMetrics count with ALL")
    eq(sorted(resp["DesiredShardLevelMetrics"]), sorted(ALL_METRICS), "metrics with ALL")
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(sorted(s["EnhancedMonitoring"][0]["ShardLevelMetrics"]), sorted(ALL_METRICS),
       "EnhancedMonitoring in the summary")
    resp = KINESIS.disable_enhanced_monitoring(
        StreamName=name, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
    rest = sorted(set(ALL_METRICS) - {"IncomingBytes", "OutgoingRecords"})
    eq(sorted(resp["CurrentShardLevelMetrics"]), sorted(ALL_METRICS), "Current before disable")
    eq(sorted(resp["DesiredShardLevelMetrics"]), rest, "Desired after disabling two")
    d = KINESIS.describe_stream(StreamName=name)["StreamDescription"]
    eq(sorted(d["EnhancedMonitoring"][0]["ShardLevelMetrics"]), rest,
       "EnhancedMonitoring in describe_stream")
    resp = KINESIS.disable_enhanced_monitoring(StreamARN=arn_of(name), ShardLevelMetrics=["ALL"])
    eq(resp["DesiredShardLevelMetrics"], [], "Desired after disabling ALL")
    expect_error("ValidationException", KINESIS.enable_enhanced_monitoring, StreamName=name,
                 ShardLevelMetrics=["NoSuchMetric"])


def test_boto3_update_max_record_size():
    name = make_stream("maxrec")
    arn = arn_of(name)
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       .get("MaxRecordSizeInKiB"), 1024, "default MaxRecordSizeInKiB")
    big = os.urandom(ONE_MIB + ONE_MIB // 2)
    expect_error("ValidationException", KINESIS.put_record, StreamName=name, Data=big,
                 PartitionKey="k")
    resp = KINESIS.update_max_record_size(StreamARN=arn, MaxRecordSizeInKiB=2048)
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {},
       "UpdateMaxRecordSize output")
    wait_active(name)
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       .get("MaxRecordSizeInKiB"), 2048, "MaxRecordSizeInKiB after the update")
    seq_int(KINESIS.put_record(StreamName=name, Data=big, PartitionKey="k")["SequenceNumber"])
    batch = KINESIS.put_records(StreamName=name, Records=[{"Data": big, "PartitionKey": "b"}])
    eq(batch["FailedRecordCount"], 0, "PutRecords of a 1.5 MiB record")
    records = read_all(name)
    eq(len(records), 2, "records read")
    check(all(r["Data"] == big for r in records), "1.5 MiB records differ after the round trip")
    expect_error("ValidationException", KINESIS.put_record, StreamName=name,
                 Data=os.urandom(2 * ONE_MIB), PartitionKey="k")
    msg = expect_error("ValidationException", KINESIS.update_max_record_size, StreamARN=arn,
                       MaxRecordSizeInKiB=10241)
    check("10240" in msg, f"message should state the 10240 maximum: {msg!r}")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       .get("MaxRecordSizeInKiB"), 2048, "MaxRecordSizeInKiB after the refused update")


def test_boto3_update_stream_mode_on_demand():
    name = make_stream("mode", shards=2)
    arn = arn_of(name)
    before = KINESIS.describe_limits()["OnDemandStreamCount"]
    resp = KINESIS.update_stream_mode(StreamARN=arn,
                                      StreamModeDetails={"StreamMode": "ON_DEMAND"})
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {},
       "UpdateStreamMode output")
    wait_active(name)
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(s["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "summary StreamMode")
    d = KINESIS.describe_stream(StreamName=name)["StreamDescription"]
    eq(d["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "describe_stream StreamMode")
    eq(KINESIS.describe_limits()["OnDemandStreamCount"], before + 1, "OnDemandStreamCount")
    msg = expect_error("ValidationException", KINESIS.split_shard, StreamName=name,
                       ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
    check(msg, "ValidationException should carry a message")
    put = KINESIS.put_record(StreamName=name, Data=b"od", PartitionKey="k")
    check(put["ShardId"] in open_shard_ids(name), f"ON_DEMAND write went to {put['ShardId']}")
    KINESIS.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_active(name)
    s = KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(s["StreamModeDetails"]["StreamMode"], "PROVISIONED", "StreamMode after switching back")


def test_cli_stream_settings():
    name = make_stream("cliset")
    arn = arn_of(name)
    out = cli("enable-enhanced-monitoring", "--stream-name", name,
              "--shard-level-metrics", "ALL")
    eq(sorted(out["DesiredShardLevelMetrics"]), sorted(ALL_METRICS), "enable ALL")
    out = cli("disable-enhanced-monitoring", "--stream-name", name,
              "--shard-level-metrics", "IncomingBytes", "IteratorAgeMilliseconds")
    eq(sorted(out["DesiredShardLevelMetrics"]),
       sorted(set(ALL_METRICS) - {"IncomingBytes", "IteratorAgeMilliseconds"}), "disable two")
    eq(cli("update-max-record-size", "--stream-arn", arn, "--max-record-size-in-ki-b", "2048"),
       None, "update-max-record-size output")
    cli_error("ValidationException", "update-max-record-size", "--stream-arn", arn,
              "--max-record-size-in-ki-b", "10241")
    eq(cli("update-stream-mode", "--stream-arn", arn,
           "--stream-mode-details", "StreamMode=ON_DEMAND"), None, "update-stream-mode output")
    wait_active(name)
    s = cli("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    eq(s["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "StreamMode")
    eq(s.get("MaxRecordSizeInKiB"), 2048, "MaxRecordSizeInKiB")
    cli_error("ValidationException", "split-shard", "--stream-name", name,
              "--shard-to-split", shard_id(0), "--new-starting-hash-key", str(HALF))


# --------------------------------------------------------------------------- consumers


def consumer_arn_pattern(name, consumer):
    return re.escape(f"{arn_of(name)}/consumer/{consumer}:") + r"[0-9]+"


def wait_consumer_active(consumer_arn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        d = KINESIS.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
        if d["ConsumerStatus"] == "ACTIVE":
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer still {d['ConsumerStatus']} after {timeout}s")
        time.sleep(0.1)


def wait_consumer_gone(stream_arn, consumer, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        names = [c["ConsumerName"] for c in
                 KINESIS.list_stream_consumers(StreamARN=stream_arn)["Consumers"]]
        if consumer not in names:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"consumer {consumer} still listed {timeout}s after deregister")
        time.sleep(0.1)


def test_boto3_stream_consumers():
    name = make_stream("cons")
    arn = arn_of(name)
    c = KINESIS.register_stream_consumer(StreamARN=arn, ConsumerName="c1")["Consumer"]
    eq(c["ConsumerName"], "c1", "ConsumerName")
    check(re.fullmatch(consumer_arn_pattern(name, "c1"), c["ConsumerARN"]),
          f"ConsumerARN {c['ConsumerARN']!r} should be {arn}/consumer/c1:<creation seconds>")
    check(c["ConsumerStatus"] in ("CREATING", "ACTIVE"), f"ConsumerStatus {c['ConsumerStatus']}")
    check(isinstance(c["ConsumerCreationTimestamp"], datetime.datetime),
          "ConsumerCreationTimestamp must parse as a datetime")
    c1 = c["ConsumerARN"]
    d = wait_consumer_active(c1)
    eq((d["ConsumerName"], d["ConsumerARN"], d["StreamARN"]), ("c1", c1, arn),
       "describe_stream_consumer by ConsumerARN")
    d = KINESIS.describe_stream_consumer(StreamARN=arn,
                                         ConsumerName="c1")["ConsumerDescription"]
    eq((d["ConsumerName"], d["ConsumerARN"], d["StreamARN"], d["ConsumerStatus"]),
       ("c1", c1, arn, "ACTIVE"), "describe_stream_consumer by StreamARN and ConsumerName")
    c2 = KINESIS.register_stream_consumer(StreamARN=arn, ConsumerName="c2")["Consumer"]
    wait_consumer_active(c2["ConsumerARN"])
    listed = KINESIS.list_stream_consumers(StreamARN=arn)["Consumers"]
    eq(sorted((x["ConsumerName"], x["ConsumerARN"]) for x in listed),
       [("c1", c1), ("c2", c2["ConsumerARN"])], "list_stream_consumers")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["ConsumerCount"], 2, "ConsumerCount")
    msg = expect_error("ResourceInUseException", KINESIS.register_stream_consumer,
                       StreamARN=arn, ConsumerName="c1")
    check("c1" in msg, f"message should name the consumer: {msg!r}")
    expect_error("ResourceNotFoundException", KINESIS.register_stream_consumer,
                 StreamARN=arn_of(unique("nostream")), ConsumerName="c1")

    KINESIS.tag_resource(ResourceARN=c1, Tags={"team": "reads", "tier": "1"})
    eq(sorted((t["Key"], t["Value"]) for t in
              KINESIS.list_tags_for_resource(ResourceARN=c1)["Tags"]),
       [("team", "reads"), ("tier", "1")], "consumer tags")
    KINESIS.untag_resource(ResourceARN=c1, TagKeys=["tier"])
    eq(KINESIS.list_tags_for_resource(ResourceARN=c1)["Tags"],
       [{"Key": "team", "Value": "reads"}], "consumer tags after untag")
    eq(KINESIS.list_tags_for_stream(StreamName=name)["Tags"], [],
       "consumer tags are not stream tags")

    KINESIS.deregister_stream_consumer(StreamARN=arn, ConsumerName="c2")
    wait_consumer_gone(arn, "c2")
    expect_error("ResourceNotFoundException", KINESIS.describe_stream_consumer,
                 ConsumerARN=c2["ConsumerARN"])
    msg = expect_error("ResourceInUseException", KINESIS.delete_stream, StreamName=name)
    check(msg, "ResourceInUseException should carry a message")
    eq(KINESIS.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
       ["StreamStatus"], "ACTIVE", "stream after the refused delete")
    KINESIS.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    KINESIS.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})


def test_boto3_deregister_consumer_then_delete_stream():
    name = make_stream("dereg")
    arn = arn_of(name)
    c = KINESIS.register_stream_consumer(StreamARN=arn, ConsumerName="only")["Consumer"]
    wait_consumer_active(c["ConsumerARN"])
    KINESIS.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
    wait_consumer_gone(arn, "only")
    eq(KINESIS.list_stream_consumers(StreamARN=arn)["Consumers"], [], "consumers after deregister")
    KINESIS.delete_stream(StreamName=name)
    KINESIS.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})


def test_boto3_subscribe_to_shard():
    """Enhanced fan-out through boto3: an HTTP/1.1 event stream that botocore accepts only if
    it starts with an initial-response event."""
    name = make_stream("efo")
    arn = arn_of(name)
    sent = [KINESIS.put_record(StreamName=name, PartitionKey="k", Data=f"r{i}".encode())
            for i in range(3)]
    c = KINESIS.register_stream_consumer(StreamARN=arn, ConsumerName="pusher")["Consumer"]
    wait_consumer_active(c["ConsumerARN"])
    out = KINESIS.subscribe_to_shard(ConsumerARN=c["ConsumerARN"], ShardId=shard_id(0),
                                     StartingPosition={"Type": "TRIM_HORIZON"})
    events = iter(out["EventStream"])
    first = next(events)["SubscribeToShardEvent"]
    eq([r["Data"] for r in first["Records"]], [b"r0", b"r1", b"r2"], "records pushed")
    eq(first["ContinuationSequenceNumber"], sent[2]["SequenceNumber"], "ContinuationSequenceNumber")
    check(isinstance(first["Records"][0]["ApproximateArrivalTimestamp"], datetime.datetime),
          "ApproximateArrivalTimestamp must parse as a datetime")
    later = KINESIS.put_record(StreamName=name, PartitionKey="k", Data=b"live")
    event = next(events)["SubscribeToShardEvent"]
    eq([r["Data"] for r in event["Records"]], [b"live"], "a record written during the subscription")
    eq(event["ContinuationSequenceNumber"], later["SequenceNumber"], "ContinuationSequenceNumber")
    expect_error("ResourceInUseException", KINESIS.subscribe_to_shard, ConsumerARN=c["ConsumerARN"],
                 ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    out["EventStream"].close()


def test_cli_stream_consumers():
    name = make_stream("clicons")
    arn = arn_of(name)
    c = cli("register-stream-consumer", "--stream-arn", arn, "--consumer-name", "cc")["Consumer"]
    check(re.fullmatch(consumer_arn_pattern(name, "cc"), c["ConsumerARN"]),
          f"ConsumerARN {c['ConsumerARN']!r}")
    wait_consumer_active(c["ConsumerARN"])
    d = cli("describe-stream-consumer", "--consumer-arn", c["ConsumerARN"])["ConsumerDescription"]
    eq((d["ConsumerName"], d["StreamARN"], d["ConsumerStatus"]), ("cc", arn, "ACTIVE"),
       "describe-stream-consumer --consumer-arn")
    d = cli("describe-stream-consumer", "--stream-arn", arn,
            "--consumer-name", "cc")["ConsumerDescription"]
    eq(d["ConsumerARN"], c["ConsumerARN"], "describe-stream-consumer by name")
    out = cli("list-stream-consumers", "--stream-arn", arn)
    eq([x["ConsumerName"] for x in out["Consumers"]], ["cc"], "list-stream-consumers")
    cli_error("ResourceInUseException", "register-stream-consumer", "--stream-arn", arn,
              "--consumer-name", "cc")
    cli_error("ResourceInUseException", "delete-stream", "--stream-name", name)
    eq(cli("deregister-stream-consumer", "--consumer-arn", c["ConsumerARN"]), None,
       "deregister-stream-consumer output")
    wait_consumer_gone(arn, "cc")
    cli_error("ResourceNotFoundException", "describe-stream-consumer",
              "--consumer-arn", c["ConsumerARN"])


# --------------------------------------------------------------------------- resource policies


def sample_policy(resource_arn, action="kinesis:GetRecords"):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "reader", "Effect": "Allow",
                       "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                       "Action": action, "Resource": resource_arn}],
    })


def test_boto3_resource_policy():
    name = make_stream("policy")
    arn = arn_of(name)
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], "{}", "policy before any put")
    first = sample_policy(arn)
    resp = KINESIS.put_resource_policy(ResourceARN=arn, Policy=first)
    eq({k: v for k, v in resp.items() if k != "ResponseMetadata"}, {},
       "PutResourcePolicy output")
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], first, "policy after put")
    second = sample_policy(arn, ["kinesis:GetRecords", "kinesis:DescribeStreamSummary"])
    KINESIS.put_resource_policy(ResourceARN=arn, Policy=second)
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], second, "policy replaced")
    expect_error("InvalidArgumentException", KINESIS.put_resource_policy, ResourceARN=arn,
                 Policy="not json")
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], second,
       "policy after the refused put")
    KINESIS.delete_resource_policy(ResourceARN=arn)
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], "{}", "policy after delete")
    expect_error("ResourceNotFoundException", KINESIS.get_resource_policy,
                 ResourceARN=arn_of(unique("nopolicy")))

    consumer = KINESIS.register_stream_consumer(StreamARN=arn,
                                                ConsumerName="pc")["Consumer"]["ConsumerARN"]
    wait_consumer_active(consumer)
    eq(KINESIS.get_resource_policy(ResourceARN=consumer)["Policy"], "{}", "consumer policy")
    cpol = sample_policy(consumer, "kinesis:SubscribeToShard")
    KINESIS.put_resource_policy(ResourceARN=consumer, Policy=cpol)
    eq(KINESIS.get_resource_policy(ResourceARN=consumer)["Policy"], cpol,
       "consumer policy after put")
    eq(KINESIS.get_resource_policy(ResourceARN=arn)["Policy"], "{}",
       "a consumer's policy is not the stream's")


def test_cli_resource_policy():
    name = make_stream("clipolicy")
    arn = arn_of(name)
    eq(cli("get-resource-policy", "--resource-arn", arn)["Policy"], "{}", "policy before put")
    policy = sample_policy(arn)
    eq(cli("put-resource-policy", "--resource-arn", arn, "--policy", policy), None,
       "put-resource-policy output")
    eq(cli("get-resource-policy", "--resource-arn", arn)["Policy"], policy, "policy after put")
    cli_error("InvalidArgumentException", "put-resource-policy", "--resource-arn", arn,
              "--policy", "not json")
    eq(cli("delete-resource-policy", "--resource-arn", arn), None,
       "delete-resource-policy output")
    eq(cli("get-resource-policy", "--resource-arn", arn)["Policy"], "{}", "policy after delete")


# --------------------------------------------------------------------------- throughput limits
#
# test_limits_* run against the suite's own server with the default `--limits aws`; its
# client makes exactly one attempt per call (see harness.client).


def limited_server():
    """The boto3 client of the suite's limits-on server, starting the server on first use."""
    return harness.limited_server("rivulet-limits-")["kinesis"]


def limited_stream(label, shards=1):
    """Create a stream on the limits-on server and wait until it is ACTIVE."""
    k = limited_server()
    name = unique(label)
    LIMITED_CREATED.append(name)
    k.create_stream(StreamName=name, ShardCount=shards)
    harness.wait_active(name, k, interval=0.1)
    return name


def rate_message(stream, shard=0):
    return f"Rate exceeded for shard {shard_id(shard)} in stream {stream} under account {ACCOUNT}."


def check_throttle(e, code, what):
    eq(e.response["Error"]["Code"], code, f"{what}: error code")
    eq(e.response["ResponseMetadata"]["HTTPStatusCode"], 400, f"{what}: HTTP status")
    eq(e.response["ResponseMetadata"].get("RetryAttempts"), 0, f"{what}: retries")
    return e.response["Error"].get("Message", "")


def hot_batches(n, size=500, every=100):
    """n PutRecords batches: every `every`-th record to shard 1 of a 2-shard stream, the
    rest pinned to shard 0 by ExplicitHashKey 0."""
    return [[{"Data": f"b{b}-{i}".encode(), "PartitionKey": "p",
              "ExplicitHashKey": str(HALF) if i % every == 0 else "0"}
             for i in range(size)] for b in range(n)]


def test_boto3_limits_off_server_does_not_throttle():
    """The shared server runs --limits off: the bursts the limits tests use all pass."""
    name = make_stream("nolimits", shards=2)
    results = burst(KINESIS.put_records,
                    [{"StreamName": name, "Records": b} for b in hot_batches(3)])
    for i, (resp, err) in enumerate(results):
        check(err is None, f"PutRecords {i} failed: {err}")
        eq(resp["FailedRecordCount"], 0, f"FailedRecordCount of PutRecords {i}")
    it = iterator(name, shard_id(0), "TRIM_HORIZON")
    results = burst(KINESIS.get_records, [{"ShardIterator": it, "Limit": 1}] * 12)
    errors = [e.response["Error"]["Code"] for _, e in results if e is not None]
    eq(errors, [], "errors of 12 concurrent GetRecords with limits off")
    results = burst(KINESIS.describe_limits, [{}] * 3)
    errors = [e.response["Error"]["Code"] for _, e in results if e is not None]
    eq(errors, [], "errors of 3 concurrent DescribeLimits with limits off")


def test_limits_put_records_throttled_per_shard():
    k = limited_server()
    name = limited_stream("burst", shards=2)
    batches = hot_batches(4)  # 1,980 records to shard 0 and 20 to shard 1, all at once
    results = burst(k.put_records, [{"StreamName": name, "Records": b} for b in batches])
    admitted0 = refused = 0
    for b, (resp, err) in enumerate(results):
        check(err is None, f"PutRecords {b} failed as a whole: {err}")
        eq(resp["ResponseMetadata"].get("RetryAttempts"), 0, "retries")
        eq(len(resp["Records"]), 500, f"result entries of PutRecords {b}")
        failed_here = 0
        for i, r in enumerate(resp["Records"]):
            to_shard1 = i % 100 == 0
            if "ErrorCode" in r:
                check(not to_shard1, f"PutRecords {b} record {i} to {shard_id(1)} was refused "
                                     f"while only shard 0 is over its rate: {r}")
                eq(r["ErrorCode"], "ProvisionedThroughputExceededException", "ErrorCode")
                eq(r.get("ErrorMessage"), rate_message(name, 0), "ErrorMessage")
                check("SequenceNumber" not in r and "ShardId" not in r,
                      f"a refused record has no SequenceNumber or ShardId: {r}")
                failed_here += 1
            else:
                eq(r.get("ShardId"), shard_id(1 if to_shard1 else 0),
                   f"ShardId of PutRecords {b} record {i}")
                seq_int(r["SequenceNumber"])
                admitted0 += not to_shard1
        eq(resp["FailedRecordCount"], failed_here, f"FailedRecordCount of PutRecords {b}")
        refused += failed_here
    check(refused > 0, "1,980 records to one shard at once: none refused "
                       "(a shard takes 1,000 records/s)")
    check(admitted0 >= 1000, f"only {admitted0} of 1,980 records admitted to a fresh shard "
                             "(it takes 1,000 records/s)")
    eq(admitted0 + refused, 1980, "admitted + refused records to shard 0")
    # What was admitted is what the shards hold.
    got = {}
    for n in (0, 1):
        it = k.get_shard_iterator(StreamName=name, ShardId=shard_id(n),
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got[n] = len(k.get_records(ShardIterator=it, Limit=10000)["Records"])
    eq(got, {0: admitted0, 1: 20}, "records read back per shard")


def test_limits_put_record_throttled_then_recovers():
    k = limited_server()
    name = limited_stream("putrec")
    data = os.urandom(ONE_MIB - 1)  # with the 1-byte key: one second of a shard's 1 MiB/s
    eq(k.put_record(StreamName=name, Data=data, PartitionKey="k")["ShardId"], shard_id(0),
       "first 1 MiB record")
    err = None
    for _ in range(4):
        try:
            k.put_record(StreamName=name, Data=data, PartitionKey="k")
        except ClientError as e:
            err = e
            break
    check(err is not None, "5 MiB in a row to one shard: PutRecord never throttled "
                           "(a shard takes 1 MiB/s)")
    msg = check_throttle(err, "ProvisionedThroughputExceededException", "PutRecord")
    eq(msg, rate_message(name, 0), "PutRecord throttle message")
    time.sleep(1.2)
    seq_int(k.put_record(StreamName=name, Data=b"again", PartitionKey="k")["SequenceNumber"])


def test_limits_get_records_throttled_then_recovers():
    k = limited_server()
    name = limited_stream("reads")
    k.put_record(StreamName=name, Data=b"r", PartitionKey="k")
    it = k.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    results = burst(k.get_records, [{"ShardIterator": it}] * 12)
    oks = [r for r, _ in results if r is not None]
    errors = [e for _, e in results if e is not None]
    check(errors, "12 concurrent GetRecords on one shard: none throttled (5 calls/s)")
    check(oks, "12 concurrent GetRecords on a fresh shard: none succeeded")
    for e in errors:
        msg = check_throttle(e, "ProvisionedThroughputExceededException", "GetRecords")
        eq(msg, rate_message(name, 0), "GetRecords throttle message")
    for r in oks:
        eq([x["Data"] for x in r["Records"]], [b"r"], "records of an admitted GetRecords")
    time.sleep(1.2)
    eq([x["Data"] for x in k.get_records(ShardIterator=it)["Records"]], [b"r"],
       "GetRecords a second later")


def test_limits_get_shard_iterator_throttled():
    k = limited_server()
    name = limited_stream("iters")
    results = burst(k.get_shard_iterator,
                    [{"StreamName": name, "ShardId": shard_id(0),
                      "ShardIteratorType": "LATEST"}] * 12)
    oks = [r for r, _ in results if r is not None]
    errors = [e for _, e in results if e is not None]
    check(errors, "12 concurrent GetShardIterator on one shard: none throttled (5 calls/s)")
    check(oks, "12 concurrent GetShardIterator on a fresh shard: none succeeded")
    for e in errors:
        msg = check_throttle(e, "ProvisionedThroughputExceededException", "GetShardIterator")
        check(shard_id(0) in msg, f"message should name the shard: {msg!r}")
    time.sleep(1.2)
    k.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="LATEST")


def test_limits_control_plane_describe_limits():
    k = limited_server()
    time.sleep(1.1)  # a full bucket, whatever ran before
    results = burst(k.describe_limits, [{}] * 3)
    oks = [r for r, _ in results if r is not None]
    errors = [e for _, e in results if e is not None]
    check(errors, "3 concurrent DescribeLimits: none throttled (1 call/s)")
    check(oks, "3 concurrent DescribeLimits after a quiet second: none succeeded")
    for e in errors:
        check_throttle(e, "LimitExceededException", "DescribeLimits")
    time.sleep(1.2)
    check(isinstance(k.describe_limits()["ShardLimit"], int), "DescribeLimits a second later")


def test_limits_account_settings_and_warm_throughput():
    """On the limits-on server, the only test that touches its account settings: the
    commitment cannot be disabled for 24 hours once enabled."""
    k = limited_server()
    c = k.describe_account_settings()["MinimumThroughputBillingCommitment"]
    eq(c["Status"], "DISABLED", "commitment of a fresh account")
    out = cli("describe-account-settings", endpoint=LIMITED["endpoint"], max_attempts=1)
    eq(out["MinimumThroughputBillingCommitment"]["Status"], "DISABLED",
       "describe-account-settings")
    name = limited_stream("warm")
    arn = arn_of(name)
    k.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    c = k.update_account_settings(
        MinimumThroughputBillingCommitment={"Status": "ENABLED"}
    )["MinimumThroughputBillingCommitment"]
    eq(c["Status"], "ENABLED", "UpdateAccountSettings output")
    check(isinstance(c.get("StartedAt"), datetime.datetime), f"StartedAt: {c}")
    c = k.describe_account_settings()["MinimumThroughputBillingCommitment"]
    eq(c["Status"], "ENABLED", "commitment after enabling")
    expect_error("ValidationException", k.update_account_settings,
                 MinimumThroughputBillingCommitment={"Status": "DISABLED"})
    cli_error("ValidationException", "update-account-settings",
              "--minimum-throughput-billing-commitment", "Status=DISABLED",
              endpoint=LIMITED["endpoint"], max_attempts=1)
    eq(k.describe_account_settings()["MinimumThroughputBillingCommitment"]["Status"],
       "ENABLED", "commitment within its first 24 hours")
    resp = k.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=100)
    eq((resp.get("StreamName"), resp.get("StreamARN")), (name, arn), "stream of the output")
    eq(resp["WarmThroughput"]["TargetMiBps"], 100, "WarmThroughput TargetMiBps")
    s = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    eq(s["StreamModeDetails"]["StreamMode"], "ON_DEMAND", "StreamMode")
    eq(s.get("WarmThroughput", {}).get("TargetMiBps"), 100, "summary WarmThroughput TargetMiBps")



# --------------------------------------------------------------------------- runner


def main():
    global KINESIS
    args = harness.parse_args("server binary for the limits-on server of test_limits_*")
    KINESIS = client("kinesis", harness.ENDPOINT,
                     retries={"mode": "standard", "max_attempts": 1})
    return harness.run("python", globals(), args, cleanup=cleanup_streams)


if __name__ == "__main__":
    sys.exit(main())
