// kafkajs consumer-group check for Shardline, driven by
// tests/integration/test_groups.py.
//
// usage: node group_consume.js BOOTSTRAP TOPIC GROUP N
//
// Joins GROUP, subscribes to TOPIC from the beginning, reads N messages,
// commits (kafkajs auto-commits on its own schedule; we also commit
// explicitly), checks the committed offsets through the admin API, and
// prints one JSON line {"values": [...], "offsets": [...]} on stdout.
// Exits non-zero (message on stderr) on failure or after 90 s.

'use strict';

const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, group, nArg] = process.argv.slice(2);
if (!bootstrap || !topic || !group || !nArg) {
  console.error('usage: node group_consume.js BOOTSTRAP TOPIC GROUP N');
  process.exit(2);
}
const N = parseInt(nArg, 10);

const watchdog = setTimeout(() => {
  console.error('kafkajs group test timed out after 90s');
  process.exit(3);
}, 90_000);

async function main() {
  const kafka = new Kafka({ clientId: 'shardline-kafkajs-group', brokers: [bootstrap], logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 });
  const values = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      values.push(message.value.toString());
      await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      if (values.length >= N) done();
    },
  });
  await finished;
  await consumer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  await admin.disconnect();
  const total = offsets[0].partitions.reduce((s, p) => s + parseInt(p.offset, 10), 0);
  if (total !== N) throw new Error(`committed offsets sum to ${total}, want ${N}: ${JSON.stringify(offsets)}`);
  console.log(JSON.stringify({ values, offsets }));
}

main()
  .then(() => { clearTimeout(watchdog); process.exit(0); })
  .catch((e) => { console.error(e && e.stack ? e.stack : String(e)); process.exit(1); });
