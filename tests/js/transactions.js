// kafkajs transactions, driven by tests/integration/test_transactions_clients.py.
//
// usage: node transactions.js BOOTSTRAP TOPIC SOURCE_TOPIC
//
// TOPIC and SOURCE_TOPIC exist (2 partitions and 1); SOURCE_TOPIC holds at
// least 8 records. Runs in steps, printing one JSON line after each and
// waiting for a line on stdin before the next (so the test can look at the
// broker in between with other clients):
//   "history":  a transactional producer (idempotent, maxInFlightRequests 1)
//               commits and aborts transactions in turn, then leaves one
//               open; a read_committed and a read_uncommitted group consumer
//               say what they read: {"step", "plan", "committed", "uncommitted"}
//               (records as [partition, offset, value])
//   "committed": the open transaction is committed and both read again
//   "zombie":   a second producer with the same transactional id fences the
//               first, whose transaction is aborted; the errors of the
//               zombie's commit, without and with a send before it
//   "offsets":  sendOffsets in a committed and in an aborted transaction;
//               the group's committed offsets after each
// Exits non-zero (message on stderr) on any unexpected failure.

'use strict';

const readline = require('readline');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, source] = process.argv.slice(2);
if (!bootstrap || !topic || !source) {
  console.error('usage: node transactions.js BOOTSTRAP TOPIC SOURCE_TOPIC');
  process.exit(2);
}
const PARTITIONS = 2;

const watchdog = setTimeout(() => {
  console.error('kafkajs transactions test timed out after 150s');
  process.exit(3);
}, 150_000);

const kafka = new Kafka({
  clientId: 'shardline-kafkajs-txn',
  brokers: [bootstrap],
  logLevel: logLevel.ERROR,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
});

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(out) {
  process.stdout.write(JSON.stringify(out) + '\n');
  const next = await lines.next();
  if (next.done) throw new Error(`stdin closed after step ${out.step}`);
}

function producer(transactionalId) {
  return kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60000,
    allowAutoTopicCreation: false,
  });
}

function messages(tag, n) {
  const out = [];
  for (let j = 0; j < n; j++) out.push({ partition: j % PARTITIONS, value: `${tag}-${j}` });
  return out;
}

// Everything a group consumer with `readUncommitted` reads from the start:
// at least `atLeast` records, then whatever else comes within `drainMs`.
async function readAll(readUncommitted, atLeast, drainMs = 1500) {
  const groupId = `g-${topic}-${readUncommitted ? 'ru' : 'rc'}-${Date.now()}`;
  const consumer = kafka.consumer({
    groupId, readUncommitted, maxWaitTimeInMs: 100, sessionTimeout: 10000, heartbeatInterval: 500,
  });
  const got = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let reached;
  const enough = new Promise((resolve) => { reached = resolve; });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push([partition, parseInt(message.offset, 10), message.value.toString()]);
      if (got.length >= atLeast) reached();
    },
  });
  if (atLeast === 0) reached();
  const timeout = new Promise((_, reject) => setTimeout(
    () => reject(new Error(`read ${got.length}/${atLeast} (readUncommitted=${readUncommitted}) in 30s: ${JSON.stringify(got)}`)),
    30000));
  await Promise.race([enough, timeout]);
  await new Promise((r) => setTimeout(r, drainMs));
  await consumer.disconnect();
  return got;
}

async function history() {
  const plan = [['commit', 6], ['abort', 6], ['commit', 5], ['abort', 3], ['commit', 6]];
  const p = producer(`tx-${topic}`);
  await p.connect();
  const done = [];
  for (const [i, [end, n]] of plan.entries()) {
    const msgs = messages(`t${i}`, n);
    const tx = await p.transaction();
    await tx.send({ topic, acks: -1, messages: msgs });
    if (end === 'commit') await tx.commit();
    else await tx.abort();
    done.push([end, msgs.map((m) => [m.partition, m.value])]);
  }
  const open = messages(`t${plan.length}`, 4);
  const tx = await p.transaction();
  await tx.send({ topic, acks: -1, messages: open });
  done.push(['open', open.map((m) => [m.partition, m.value])]);
  const committedCount = plan.filter(([e]) => e === 'commit').reduce((s, [, n]) => s + n, 0);
  const allCount = plan.reduce((s, [, n]) => s + n, 0) + open.length;
  await step({
    step: 'history',
    plan: done,
    committed: await readAll(false, committedCount),
    uncommitted: await readAll(true, allCount),
  });
  await tx.commit();
  await step({
    step: 'committed',
    committed: await readAll(false, committedCount + open.length),
    uncommitted: await readAll(true, allCount),
  });
  await p.disconnect();
}

// A second producer with the same transactional id aborts the first one's
// open transaction and fences it; the zombie then commits (`send`: after
// sending once more). Its error, or null if it went through.
async function zombie(send) {
  const id = `tx-zombie-${send ? 'send' : 'commit'}-${topic}`;
  const a = producer(id);
  await a.connect();
  const txA = await a.transaction();
  await txA.send({ topic, acks: -1, messages: [{ partition: 0, value: 'zombie-1' }] });
  const b = producer(id);
  await b.connect();
  const txB = await b.transaction();
  await txB.send({ topic, acks: -1, messages: [{ partition: 0, value: `live-${send ? 'send' : 'commit'}` }] });
  await txB.commit();
  let error = null;
  try {
    if (send) await txA.send({ topic, acks: -1, messages: [{ partition: 0, value: 'zombie-2' }] });
    await txA.commit();
  } catch (e) {
    error = e.type || e.name;
  }
  await a.disconnect().catch(() => {});
  await b.disconnect();
  return error;
}

async function zombies() {
  await step({ step: 'zombie', commit_error: await zombie(false), send_error: await zombie(true) });
}

async function offsets() {
  const group = `g-offsets-${topic}`;
  const admin = kafka.admin();
  await admin.connect();
  const committedOffset = async () => {
    const o = await admin.fetchOffsets({ groupId: group, topics: [source] });
    return parseInt(o[0].partitions.find((x) => x.partition === 0).offset, 10);
  };
  const p = producer(`tx-offsets-${topic}`);
  await p.connect();
  const seen = {};
  for (const [end, offset] of [['commit', 5], ['abort', 8]]) {
    const tx = await p.transaction();
    await tx.send({ topic, acks: -1, messages: [{ partition: 1, value: `out-${offset}` }] });
    await tx.sendOffsets({
      consumerGroupId: group,
      topics: [{ topic: source, partitions: [{ partition: 0, offset: String(offset) }] }],
    });
    if (end === 'commit') await tx.commit();
    else await tx.abort();
    seen[end] = await committedOffset();
  }
  await step({ step: 'offsets', group, after_commit: seen.commit, after_abort: seen.abort });
  await p.disconnect();
  await admin.disconnect();
}

async function main() {
  await history();
  await zombies();
  await offsets();
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => {
    console.error('kafkajs transactions test failed:', err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
