#!/usr/bin/env python3
"""Writes the seed corpus of the `request` fuzz target: one valid request per operation
(first byte: the operation's index, as in fuzz_targets/request.rs; then the body).
    python3 fuzz/seeds/request.py fuzz/corpus/request"""
import hashlib
import json
import os
import sys

KINESIS = """AddTagsToStream CreateStream DecreaseStreamRetentionPeriod DeleteResourcePolicy
DeleteStream DeregisterStreamConsumer DescribeAccountSettings DescribeLimits DescribeStream
DescribeStreamConsumer DescribeStreamSummary DisableEnhancedMonitoring EnableEnhancedMonitoring
GetRecords GetResourcePolicy GetShardIterator IncreaseStreamRetentionPeriod ListShards
ListStreamConsumers ListStreams ListTagsForResource ListTagsForStream MergeShards PutRecord
PutRecords PutResourcePolicy RegisterStreamConsumer RemoveTagsFromStream SplitShard
StartStreamEncryption StopStreamEncryption SubscribeToShard TagResource UntagResource
UpdateAccountSettings UpdateMaxRecordSize UpdateShardCount UpdateStreamMode
UpdateStreamWarmThroughput""".split()
CLOUDWATCH = """PutMetricData GetMetricStatistics GetMetricData ListMetrics PutMetricAlarm
DescribeAlarms DescribeAlarmsForMetric DeleteAlarms SetAlarmState DescribeAlarmHistory
EnableAlarmActions DisableAlarmActions PutDashboard GetDashboard ListDashboards
DeleteDashboards""".split()

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
S = {"StreamName": "s"}
kinesis = {
    "AddTagsToStream": {**S, "Tags": {"team": "a"}},
    "CreateStream": {"StreamName": "t", "ShardCount": 1},
    "DecreaseStreamRetentionPeriod": {**S, "RetentionPeriodHours": 24},
    "DeleteResourcePolicy": {"ResourceARN": ARN},
    "DeleteStream": {"StreamName": "t"},
    "DeregisterStreamConsumer": {"StreamARN": ARN, "ConsumerName": "c"},
    "DescribeAccountSettings": {},
    "DescribeLimits": {},
    "DescribeStream": {**S, "Limit": 10},
    "DescribeStreamConsumer": {"StreamARN": ARN, "ConsumerName": "c"},
    "DescribeStreamSummary": S,
    "DisableEnhancedMonitoring": {**S, "ShardLevelMetrics": ["ALL"]},
    "EnableEnhancedMonitoring": {**S, "ShardLevelMetrics": ["IncomingBytes"]},
    "GetRecords": {"ShardIterator": "AAAAAAAAAAE=", "Limit": 10},
    "GetResourcePolicy": {"ResourceARN": ARN},
    "GetShardIterator": {**S, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"},
    "IncreaseStreamRetentionPeriod": {**S, "RetentionPeriodHours": 48},
    "ListShards": {**S, "MaxResults": 2},
    "ListStreamConsumers": {"StreamARN": ARN},
    "ListStreams": {"Limit": 5},
    "ListTagsForResource": {"ResourceARN": ARN},
    "ListTagsForStream": S,
    "MergeShards": {**S, "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001"},
    "PutRecord": {**S, "PartitionKey": "k", "Data": "aGVsbG8="},
    "PutRecords": {**S, "Records": [{"PartitionKey": "a", "Data": "eA=="}, {"PartitionKey": "b", "Data": "eQ==", "ExplicitHashKey": "1"}]},
    "PutResourcePolicy": {"ResourceARN": ARN, "Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
    "RegisterStreamConsumer": {"StreamARN": ARN, "ConsumerName": "c"},
    "RemoveTagsFromStream": {**S, "TagKeys": ["team"]},
    "SplitShard": {**S, "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "100"},
    "StartStreamEncryption": {**S, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
    "StopStreamEncryption": {**S, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
    "SubscribeToShard": {"ConsumerARN": ARN + "/consumer/c:1", "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}},
    "TagResource": {"ResourceARN": ARN, "Tags": {"a": "b"}},
    "UntagResource": {"ResourceARN": ARN, "TagKeys": ["a"]},
    "UpdateAccountSettings": {"MinimumThroughputBillingCommitment": {"Status": "DISABLED"}},
    "UpdateMaxRecordSize": {"StreamARN": ARN, "MaxRecordSizeInKiB": 2048},
    "UpdateShardCount": {**S, "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"},
    "UpdateStreamMode": {"StreamARN": ARN, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}},
    "UpdateStreamWarmThroughput": {"StreamARN": ARN, "WarmThroughputMiBps": 10},
}
M = {"Namespace": "AWS/Kinesis", "MetricName": "IncomingBytes", "Dimensions": [{"Name": "StreamName", "Value": "s"}]}
ALARM = {"AlarmName": "a", **M, "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1,
         "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"}
cloudwatch = {
    "PutMetricData": {"Namespace": "app", "MetricData": [{"MetricName": "m", "Value": 1.5, "Unit": "Count", "Dimensions": [{"Name": "d", "Value": "v"}]}]},
    "GetMetricStatistics": {**M, "StartTime": 1700000000, "EndTime": 1700003600, "Period": 60, "Statistics": ["Sum"], "ExtendedStatistics": ["p99"]},
    "GetMetricData": {"StartTime": 1700000000, "EndTime": 1700003600, "MetricDataQueries": [
        {"Id": "m1", "MetricStat": {"Metric": M, "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "e1", "Expression": "RATE(m1) * 2 + FILL(m1, 0)"}]},
    "ListMetrics": {"Namespace": "AWS/Kinesis"},
    "PutMetricAlarm": ALARM,
    "DescribeAlarms": {"AlarmNames": ["a"]},
    "DescribeAlarmsForMetric": {k: M[k] for k in M},
    "DeleteAlarms": {"AlarmNames": ["a"]},
    "SetAlarmState": {"AlarmName": "a", "StateValue": "ALARM", "StateReason": "test"},
    "DescribeAlarmHistory": {"AlarmName": "a"},
    "EnableAlarmActions": {"AlarmNames": ["a"]},
    "DisableAlarmActions": {"AlarmNames": ["a"]},
    "PutDashboard": {"DashboardName": "d", "DashboardBody": json.dumps({"widgets": [{"type": "text", "properties": {"markdown": "x"}}]})},
    "GetDashboard": {"DashboardName": "d"},
    "ListDashboards": {},
    "DeleteDashboards": {"DashboardNames": ["d"]},
}


def cbor(v):
    """Minimal CBOR encoder for the seeds (floats as double, ints, text, arrays, maps)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        for size, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
            if n < 1 << (8 * size):
                return bytes([major << 5 | code]) + n.to_bytes(size, "big")
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        import struct
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = []
    for i, op in enumerate(KINESIS):
        seeds.append(bytes([i]) + json.dumps(kinesis[op]).encode())
    base = len(KINESIS)
    for i, op in enumerate(CLOUDWATCH):
        seeds.append(bytes([base + i]) + json.dumps(cloudwatch[op]).encode())
        seeds.append(bytes([base + len(CLOUDWATCH) + i]) + cbor(cloudwatch[op]))
    for s in seeds:
        name = hashlib.sha1(s).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(s)
    print(f"{len(seeds)} seeds in {out}")


main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/request")
