// kafkajs client check for Shardline, driven by tests/integration/test_kafkajs.py.
//
// usage: node produce.js BOOTSTRAP TOPIC N
//
// Creates TOPIC with 2 partitions via the admin API, checks its metadata,
// produces N keyed messages with headers (plain, then GZIP, then with the
// idempotent producer), checks the admin offsets, and prints one JSON line
// {"deliveries": [{i, partition, offset}], "offsets": [...]} on stdout.
// Consumer groups are not implemented by the broker yet, and kafkajs can only
// consume through a group, so the Python side verifies the data by reading it
// back with confluent-kafka assign().
// Exits non-zero (with a message on stderr) on any failure.

'use strict';

const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

const [bootstrap, topic, nArg] = process.argv.slice(2);
if (!bootstrap || !topic || !nArg) {
  console.error('usage: node produce.js BOOTSTRAP TOPIC N');
  process.exit(2);
}
const N = parseInt(nArg, 10);
const PARTITIONS = 2;

const watchdog = setTimeout(() => {
  console.error('kafkajs test timed out after 90s');
  process.exit(3);
}, 90_000);

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

function message(i) {
  return {
    key: `key-${i}`,
    value: `kafkajs-value-${i}`,
    partition: i % PARTITIONS,
    headers: { idx: String(i), client: 'kafkajs' },
  };
}

async function main() {
  const kafka = new Kafka({
    clientId: 'shardline-kafkajs-test',
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 200 },
  });

  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 15000,
  });
  check(created === true, `createTopics returned ${created}`);

  const topics = await admin.listTopics();
  check(topics.includes(topic), `listTopics does not include ${topic}: ${JSON.stringify(topics)}`);
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  check(md.topics.length === 1 && md.topics[0].name === topic, `metadata: ${JSON.stringify(md)}`);
  check(md.topics[0].partitions.length === PARTITIONS,
    `expected ${PARTITIONS} partitions: ${JSON.stringify(md.topics[0].partitions)}`);

  const deliveries = [];
  const third = Math.floor(N / 3);
  const phases = [
    { from: 0, to: third, opts: {}, compression: CompressionTypes.None },
    { from: third, to: 2 * third, opts: {}, compression: CompressionTypes.GZIP },
    { from: 2 * third, to: N, opts: { idempotent: true, maxInFlightRequests: 1 }, compression: CompressionTypes.None },
  ];
  for (const ph of phases) {
    const producer = kafka.producer({ allowAutoTopicCreation: false, ...ph.opts });
    await producer.connect();
    // Send in chunks of 10 so several record batches are written per phase.
    for (let s = ph.from; s < ph.to; s += 10) {
      const msgs = [];
      for (let i = s; i < Math.min(s + 10, ph.to); i++) msgs.push(message(i));
      const meta = await producer.send({ topic, acks: -1, compression: ph.compression, messages: msgs });
      // One RecordMetadata per partition: baseOffset of that partition's batch.
      for (const m of meta) {
        check(m.errorCode === 0, `produce error ${JSON.stringify(m)}`);
        let off = parseInt(m.baseOffset, 10);
        for (const msg of msgs) {
          if (msg.partition === m.partition) {
            deliveries.push({ i: parseInt(msg.headers.idx, 10), partition: m.partition, offset: off++ });
          }
        }
      }
    }
    await producer.disconnect();
  }
  check(deliveries.length === N, `expected ${N} deliveries, got ${deliveries.length}`);

  const offsets = await admin.fetchTopicOffsets(topic);
  const perPartition = {};
  for (const d of deliveries) perPartition[d.partition] = (perPartition[d.partition] || 0) + 1;
  for (const o of offsets) {
    const want = perPartition[o.partition] || 0;
    check(parseInt(o.high, 10) === want, `partition ${o.partition} high=${o.high}, want ${want}`);
    check(parseInt(o.low, 10) === 0, `partition ${o.partition} low=${o.low}, want 0`);
  }
  check(offsets.length === PARTITIONS, `fetchTopicOffsets: ${JSON.stringify(offsets)}`);

  await admin.disconnect();
  process.stdout.write(JSON.stringify({ deliveries, offsets }) + '\n');
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => {
    console.error('kafkajs test failed:', err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
