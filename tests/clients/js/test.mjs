// Rivulet conformance tests through the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis).
//
// The Kinesis client's DEFAULT request handler is NodeHttp2Handler, which speaks HTTP/2
// with prior knowledge to an http:// endpoint: these tests pass only if the server
// serves cleartext HTTP/2 (h2c).
//
// Usage: node test.mjs --endpoint http://127.0.0.1:PORT [--counts-file F] [-k SUBSTR]
// Prints `ok NAME` / `FAIL NAME: reason` per test and closes with `js: N passed, M failed`;
// --counts-file also gets `N M`.

import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  InvalidArgumentException,
  KinesisClient,
  ListShardsCommand,
  ListStreamsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  RegisterStreamConsumerCommand,
  SubscribeToShardCommand,
  paginateListStreams,
  waitUntilStreamExists,
  waitUntilStreamNotExists,
} from "@aws-sdk/client-kinesis";

const ACCOUNT = "000000000000";
const REGION = "us-east-1";

const { values: opts } = parseArgs({
  options: {
    endpoint: { type: "string", default: process.env.RIVULET_ENDPOINT },
    "counts-file": { type: "string" },
    k: { type: "string", default: "" },
  },
});
if (!opts.endpoint) {
  console.error("--endpoint (or $RIVULET_ENDPOINT) is required");
  process.exit(2);
}

const client = new KinesisClient({
  endpoint: opts.endpoint,
  region: REGION,
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
  // requestHandler deliberately left at its default (NodeHttp2Handler).
});

const runId = randomBytes(3).toString("hex");
const created = [];

// ------------------------------------------------------------------ helpers

class Failure extends Error {}

function check(cond, message) {
  if (!cond) throw new Failure(message);
}

function eq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Failure(`${what}: expected ${e}, got ${a}`);
}

function unique(label) {
  return `rv-js-${runId}-${label}-${randomBytes(3).toString("hex")}`;
}

const shardId = (n) => `shardId-${String(n).padStart(12, "0")}`;
const arnOf = (name) => `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${name}`;
const bytes = (s) => new TextEncoder().encode(s);
const hex = (u8) => Buffer.from(u8).toString("hex");

async function makeStream(label, shards = 1) {
  const name = unique(label);
  created.push(name);
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await waitUntilStreamExists(
    { client, maxWaitTime: 10, minDelay: 1, maxDelay: 1 },
    { StreamName: name },
  );
  return name;
}

async function expectError(ErrorClass, command) {
  try {
    await client.send(command);
  } catch (err) {
    check(
      err.name === ErrorClass.name,
      `expected ${ErrorClass.name}, got ${err.name}: ${err.message}`,
    );
    check(err instanceof ErrorClass, `error is not an instance of ${ErrorClass.name}`);
    eq(err.$metadata?.httpStatusCode, 400, "HTTP status");
    return err;
  }
  throw new Failure(`expected ${ErrorClass.name}, but the call succeeded`);
}

async function readShard(name, shard) {
  let { ShardIterator: it } = await client.send(
    new GetShardIteratorCommand({
      StreamName: name,
      ShardId: shard,
      ShardIteratorType: "TRIM_HORIZON",
    }),
  );
  const records = [];
  for (let i = 0; i < 50; i++) {
    const resp = await client.send(new GetRecordsCommand({ ShardIterator: it }));
    check(resp.NextShardIterator !== it, "NextShardIterator must be a new iterator");
    if (resp.Records.length === 0) return records;
    records.push(...resp.Records);
    it = resp.NextShardIterator;
  }
  throw new Failure("shard did not drain within 50 GetRecords calls");
}

// ------------------------------------------------------------------ tests

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("default request handler is HTTP/2", async () => {
  const handler = client.config.requestHandler;
  eq(handler?.constructor?.name, "NodeHttp2Handler", "request handler class");
  const limits = await client.send(new ListStreamsCommand({ Limit: 1 }));
  check(Array.isArray(limits.StreamNames), "ListStreams over h2c answered");
});

test("create stream and describe it", async () => {
  const name = await makeStream("create", 2);
  const { StreamDescriptionSummary: s } = await client.send(
    new DescribeStreamSummaryCommand({ StreamName: name }),
  );
  eq(s.StreamStatus, "ACTIVE", "StreamStatus");
  eq(s.StreamARN, arnOf(name), "StreamARN");
  eq(s.OpenShardCount, 2, "OpenShardCount");
  const { StreamDescription: d } = await client.send(
    new DescribeStreamCommand({ StreamName: name }),
  );
  eq(
    d.Shards.map((x) => [x.ShardId, x.HashKeyRange.StartingHashKey, x.HashKeyRange.EndingHashKey]),
    [
      [shardId(0), "0", "170141183460469231731687303715884105727"],
      [shardId(1), "170141183460469231731687303715884105728", "340282366920938463463374607431768211455"],
    ],
    "shards",
  );
  check(d.StreamCreationTimestamp instanceof Date, "StreamCreationTimestamp must be a Date");
});

test("put records and get them back byte-exact", async () => {
  const name = await makeStream("records", 2);
  const binary = new Uint8Array(256).map((_, i) => i);
  const sent = [
    { Data: bytes("hello h2c"), PartitionKey: "alpha" },
    { Data: new Uint8Array(0), PartitionKey: "empty" },
    { Data: binary, PartitionKey: "binary" },
    { Data: bytes("ünïcödé ✓"), PartitionKey: "unicode" },
  ];
  const one = await client.send(
    new PutRecordCommand({ StreamName: name, Data: sent[0].Data, PartitionKey: "alpha" }),
  );
  check(/^[0-9]+$/.test(one.SequenceNumber), `SequenceNumber ${one.SequenceNumber}`);
  const md5 = BigInt("0x" + createHash("md5").update("alpha").digest("hex"));
  eq(one.ShardId, md5 < 2n ** 127n ? shardId(0) : shardId(1), "md5 routing of 'alpha'");
  const batch = await client.send(
    new PutRecordsCommand({ StreamName: name, Records: sent.slice(1) }),
  );
  eq(batch.FailedRecordCount, 0, "FailedRecordCount");
  eq(batch.Records.length, 3, "PutRecords result entries");
  for (const r of batch.Records) {
    check(r.ShardId && /^[0-9]+$/.test(r.SequenceNumber), `bad entry ${JSON.stringify(r)}`);
  }
  const got = [...(await readShard(name, shardId(0))), ...(await readShard(name, shardId(1)))];
  const byKey = Object.fromEntries(got.map((r) => [r.PartitionKey, r]));
  eq(Object.keys(byKey).sort(), ["alpha", "binary", "empty", "unicode"], "partition keys");
  for (const s of sent) {
    const r = byKey[s.PartitionKey];
    eq(hex(r.Data), hex(s.Data), `data of ${s.PartitionKey}`);
    check(r.ApproximateArrivalTimestamp instanceof Date, "ApproximateArrivalTimestamp is a Date");
    check(
      Math.abs(r.ApproximateArrivalTimestamp.getTime() - Date.now()) < 5 * 60 * 1000,
      `ApproximateArrivalTimestamp ${r.ApproximateArrivalTimestamp.toISOString()} is not about now`,
    );
  }
  eq(byKey.alpha.SequenceNumber, one.SequenceNumber, "SequenceNumber of the PutRecord record");
});

test("concurrent requests share the HTTP/2 connection", async () => {
  const name = await makeStream("concurrent", 1);
  const results = await Promise.all(
    Array.from({ length: 25 }, (_, i) =>
      client.send(
        new PutRecordCommand({ StreamName: name, Data: bytes(`c${i}`), PartitionKey: `k${i}` }),
      ),
    ),
  );
  const seqs = new Set(results.map((r) => r.SequenceNumber));
  eq(seqs.size, 25, "distinct sequence numbers");
  const got = await readShard(name, shardId(0));
  eq(got.length, 25, "records read back");
  const order = got.map((r) => BigInt(r.SequenceNumber));
  check(order.every((v, i) => i === 0 || v > order[i - 1]), "sequence numbers increase");
});

test("list streams, with pagination", async () => {
  const names = [await makeStream("list-a"), await makeStream("list-b")];
  const resp = await client.send(new ListStreamsCommand({}));
  for (const n of names) {
    check(resp.StreamNames.includes(n), `${n} missing from StreamNames`);
    const s = resp.StreamSummaries.find((x) => x.StreamName === n);
    check(s, `${n} missing from StreamSummaries`);
    eq(s.StreamARN, arnOf(n), "summary StreamARN");
  }
  const seen = [];
  let pages = 0;
  for await (const page of paginateListStreams({ client, pageSize: 1 }, {})) {
    pages++;
    check(page.StreamNames.length <= 1, "page larger than Limit 1");
    seen.push(...page.StreamNames);
    check(pages < 1000, "paginator does not end");
  }
  check(pages >= 2, `expected several pages, got ${pages}`);
  for (const n of names) check(seen.includes(n), `${n} missing from paginated listing`);
  const shards = await client.send(new ListShardsCommand({ StreamName: names[0] }));
  eq(shards.Shards.map((s) => s.ShardId), [shardId(0)], "ListShards");
});

test("ResourceNotFoundException for a missing stream", async () => {
  const name = unique("absent");
  const err = await expectError(
    ResourceNotFoundException,
    new DescribeStreamCommand({ StreamName: name }),
  );
  eq(err.message, `Stream ${name} under account ${ACCOUNT} not found.`, "message");
  await expectError(
    ResourceNotFoundException,
    new PutRecordCommand({ StreamName: name, Data: bytes("x"), PartitionKey: "k" }),
  );
});

test("ResourceInUseException and InvalidArgumentException", async () => {
  const name = await makeStream("dup");
  const err = await expectError(
    ResourceInUseException,
    new CreateStreamCommand({ StreamName: name, ShardCount: 1 }),
  );
  eq(err.message, `Stream ${name} under account ${ACCOUNT} already exists.`, "message");
  await expectError(
    InvalidArgumentException,
    new GetRecordsCommand({ ShardIterator: "not-a-real-iterator" }),
  );
});

test("delete stream and wait until it is gone", async () => {
  const name = await makeStream("delete");
  await client.send(new DeleteStreamCommand({ StreamName: name }));
  await waitUntilStreamNotExists(
    { client, maxWaitTime: 10, minDelay: 1, maxDelay: 1 },
    { StreamName: name },
  );
  await expectError(ResourceNotFoundException, new DescribeStreamSummaryCommand({ StreamName: name }));
});

test("SubscribeToShard pushes records over an HTTP/2 event stream", async () => {
  const name = await makeStream("efo");
  const streamArn = `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${name}`;
  await client.send(new PutRecordCommand({ StreamName: name, PartitionKey: "k", Data: Buffer.from("first") }));
  const { Consumer } = await client.send(
    new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: "h2" }),
  );
  const out = await client.send(
    new SubscribeToShardCommand({
      ConsumerARN: Consumer.ConsumerARN,
      ShardId: "shardId-000000000000",
      StartingPosition: { Type: "TRIM_HORIZON" },
    }),
  );
  const events = out.EventStream[Symbol.asyncIterator]();
  const first = (await events.next()).value.SubscribeToShardEvent;
  if (Buffer.from(first.Records[0].Data).toString() !== "first") {
    throw new Failure(`first record: ${JSON.stringify(first.Records)}`);
  }
  const put = await client.send(
    new PutRecordCommand({ StreamName: name, PartitionKey: "k", Data: Buffer.from("live") }),
  );
  const live = (await events.next()).value.SubscribeToShardEvent;
  if (Buffer.from(live.Records[0].Data).toString() !== "live") {
    throw new Failure(`live record: ${JSON.stringify(live.Records)}`);
  }
  if (live.ContinuationSequenceNumber !== put.SequenceNumber) {
    throw new Failure(`ContinuationSequenceNumber ${live.ContinuationSequenceNumber} != ${put.SequenceNumber}`);
  }
  await events.return?.();
});

// ------------------------------------------------------------------ runner

async function cleanup() {
  while (created.length) {
    const name = created.pop();
    try {
      await client.send(new DeleteStreamCommand({ StreamName: name, EnforceConsumerDeletion: true }));
    } catch {
      // already gone
    }
  }
}

let passed = 0;
let failed = 0;
for (const t of tests.filter((t) => t.name.includes(opts.k))) {
  const started = performance.now();
  try {
    await t.fn();
    passed++;
    console.log(`ok ${t.name} (${((performance.now() - started) / 1000).toFixed(2)}s)`);
  } catch (err) {
    failed++;
    const reason = err instanceof Failure ? err.message : `${err.name}: ${err.message}`;
    console.log(`FAIL ${t.name}: ${reason}`);
    if (!(err instanceof Failure) && err.stack) console.log(err.stack.split("\n").slice(1, 4).join("\n"));
  } finally {
    await cleanup();
  }
}
client.destroy();
console.log(`js: ${passed} passed, ${failed} failed`);
if (opts["counts-file"]) writeFileSync(opts["counts-file"], `${passed} ${failed}\n`);
process.exitCode = failed ? 1 : 0;
