"""Walks every constraint of the Kinesis model (botocore's service-2.json) and checks that
Rivulet refuses a request breaking it with a ValidationException naming the member, as
Kinesis does.

For each operation and each constrained input member (min/max length or value, pattern,
enum, required, list and map sizes, one level of nested structures and the members of the
PutRecords entries), it sends a raw JSON 1.1 request in which only that member is wrong.
Raw HTTP, because boto3 would refuse the request itself.

    python tests/clients/test_model_constraints.py --endpoint URL --counts-file FILE
"""

import argparse
import json
import re
import sys
import urllib.error
import urllib.request

import botocore.loaders

ACCOUNT = "000000000000"
REGION = "us-east-1"
STREAM = "model-constraints"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}"

# Values that break a pattern, tried in order; the first the pattern rejects is used.
PATTERN_BREAKERS = ["bad value!", "!!", "x y", "-1", "0x1", "arn:nope"]


def call(endpoint, operation, body):
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        endpoint + "/",
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Kinesis_20131202.{operation}",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=host, Signature=00",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def lower_camel(name):
    return name[0].lower() + name[1:]


def valid_value(shapes, shape_name, member_name):
    """A value of the right type that satisfies the shape's own constraints."""
    shape = shapes[shape_name]
    t = shape["type"]
    if t == "string":
        if "enum" in shape:
            return shape["enum"][0]
        by_name = {
            "StreamARN": STREAM_ARN,
            "ResourceARN": STREAM_ARN,
            "ConsumerARN": f"{STREAM_ARN}/consumer/c:1",
            "ShardId": "shardId-000000000000",
            "HashKey": "1",
            "SequenceNumber": "1",
            "StreamId": "abcdefghij0123456789-abc",
        }
        if shape_name in by_name:
            return by_name[shape_name]
        return "x" * max(1, shape.get("min", 1))
    if t in ("integer", "long"):
        return shape.get("min", 1)
    if t == "boolean":
        return False
    if t == "blob":
        return "eA=="
    if t == "timestamp":
        return 1700000000
    if t == "list":
        return [valid_value(shapes, shape["member"]["shape"], member_name)] * max(1, shape.get("min", 1))
    if t == "map":
        return {"k": "v"}
    if t == "structure":
        return {m: valid_value(shapes, s["shape"], m) for m, s in shape["members"].items() if m in shape.get("required", [])}
    raise ValueError(t)


def breakers(shapes, shape_name, member_name):
    """(description, bad value, expected constraint phrase) for each constraint of a shape."""
    shape = shapes[shape_name]
    t = shape["type"]
    out = []
    if t == "string":
        if "enum" in shape:
            out.append(("enum", "NOT_A_VALID_VALUE", "Member must satisfy enum value set"))
        if shape.get("min", 0) >= 1:
            out.append(("min length", "", "Member must have length greater than or equal to"))
        if "max" in shape and shape["max"] <= 4096:
            out.append(("max length", "a" * (shape["max"] + 1), "Member must have length less than or equal to"))
        if "pattern" in shape:
            for candidate in PATTERN_BREAKERS:
                fits_length = shape.get("min", 0) <= len(candidate) <= shape.get("max", 10**9)
                if fits_length and not re.fullmatch(shape["pattern"], candidate):
                    out.append(("pattern", candidate, "Member must satisfy regular expression pattern"))
                    break
    elif t in ("integer", "long"):
        if "min" in shape:
            out.append(("min value", shape["min"] - 1, "Member must have value greater than or equal to"))
        if "max" in shape:
            out.append(("max value", shape["max"] + 1, "Member must have value less than or equal to"))
    elif t == "list":
        if shape.get("min", 0) >= 1:
            out.append(("min entries", [], "Member must have length greater than or equal to"))
        if "max" in shape and shape["max"] <= 1000:
            item = valid_value(shapes, shape["member"]["shape"], member_name)
            items = [item] * (shape["max"] + 1)
            if isinstance(item, str):
                items = [f"{item}{i}" if len(item) < 100 else item for i in range(shape["max"] + 1)]
            out.append(("max entries", items, "Member must have length less than or equal to"))
    elif t == "map":
        if shape.get("min", 0) >= 1:
            out.append(("min entries", {}, "Member must have length greater than or equal to"))
        if "max" in shape:
            out.append(("max entries", {f"k{i}": "v" for i in range(shape["max"] + 1)}, "Member must have length less than or equal to"))
    return out


def cases(model):
    """(operation, description, body, path, phrase) for every constraint to check."""
    shapes = model["shapes"]
    for op_name, op in sorted(model["operations"].items()):
        if "input" not in op:
            continue
        input_shape = shapes[op["input"]["shape"]]
        members = input_shape["members"]
        required = input_shape.get("required", [])
        for member, ref in members.items():
            path = lower_camel(member)
            if member in required:
                yield op_name, f"{member} missing", {}, path, "Member must not be null"
            for what, bad, phrase in breakers(shapes, ref["shape"], member):
                yield op_name, f"{member} {what}", {member: bad}, path, phrase
            inner = shapes[ref["shape"]]
            if inner["type"] == "structure":
                for sub, sub_ref in inner["members"].items():
                    sub_path = f"{path}.{lower_camel(sub)}"
                    base = valid_value(shapes, ref["shape"], member)
                    if sub in inner.get("required", []):
                        body = {member: {k: v for k, v in base.items() if k != sub}}
                        yield op_name, f"{member}.{sub} missing", body, sub_path, "Member must not be null"
                    for what, bad, phrase in breakers(shapes, sub_ref["shape"], sub):
                        yield op_name, f"{member}.{sub} {what}", {member: {**base, sub: bad}}, sub_path, phrase
            if op_name == "PutRecords" and member == "Records":
                entry_shape = shapes[inner["member"]["shape"]]
                for sub, sub_ref in entry_shape["members"].items():
                    entry = {"Data": "eA==", "PartitionKey": "k"}
                    sub_path = f"records.1.member.{lower_camel(sub)}"
                    for what, bad, phrase in breakers(shapes, sub_ref["shape"], sub):
                        yield op_name, f"Records[0].{sub} {what}", {"Records": [{**entry, sub: bad}]}, sub_path, phrase


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--counts-file")
    args = parser.parse_args()
    model = botocore.loaders.Loader().load_service_model("kinesis", "service-2")
    passed, failed = 0, 0
    for op, what, body, path, phrase in cases(model):
        status, text = call(args.endpoint, op, body)
        try:
            reply = json.loads(text) if text else {}
        except ValueError:
            reply = {}
        message = reply.get("message") or reply.get("Message") or ""
        ok = status == 400 and reply.get("__type") == "ValidationException" and f"at '{path}'" in message and phrase in message
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {op}: {what}: expected ValidationException at '{path}' ({phrase}), got {status} {text[:300]}")
    print(f"model constraints: {passed} passed, {failed} failed")
    if args.counts_file:
        with open(args.counts_file, "w") as f:
            f.write(f"{passed} {failed}\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
