// kafkajs over a SASL_PLAINTEXT listener, driven by
// tests/integration/test_sasl.py.
//
// usage: node sasl.js BOOTSTRAP MECHANISM USER PASSWORD TOPIC N
//
// With KAFKAJS_SSL_CA=<PEM file> it connects with TLS (SASL_SSL), trusting
// that CA only.
// MECHANISM is plain, scram-sha-256 or scram-sha-512 (kafkajs spelling).
// Connects an admin client (SaslHandshake v1 + SaslAuthenticate), checks the
// topic's metadata, produces N messages to partition 0 and prints one JSON
// line {"offsets": [...], "brokers": [...]} on stdout. Exits non-zero (with
// the error on stderr) on any failure, so authentication errors show.

'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, mechanism, username, password, topic, nArg] = process.argv.slice(2);
if (!nArg) {
  console.error('usage: node sasl.js BOOTSTRAP MECHANISM USER PASSWORD TOPIC N');
  process.exit(2);
}
const N = parseInt(nArg, 10);
const watchdog = setTimeout(() => {
  console.error('kafkajs sasl test timed out after 60s');
  process.exit(3);
}, 60_000);

async function main() {
  const kafka = new Kafka({
    clientId: 'shardline-kafkajs-sasl',
    brokers: [bootstrap],
    sasl: { mechanism, username, password },
    ssl: process.env.KAFKAJS_SSL_CA
      ? { ca: [fs.readFileSync(process.env.KAFKAJS_SSL_CA, 'utf8')], servername: 'localhost' }
      : false,
    logLevel: logLevel.ERROR,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 2, initialRetryTime: 200 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const cluster = await admin.describeCluster();
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  if (md.topics.length !== 1) throw new Error('metadata: ' + JSON.stringify(md));
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const offsets = [];
  for (let i = 0; i < N; i++) {
    const meta = await producer.send({
      topic,
      acks: -1,
      messages: [{ key: `k${i}`, value: `kafkajs-sasl-${mechanism}-${i}`, partition: 0 }],
    });
    offsets.push(parseInt(meta[0].baseOffset, 10));
  }
  await producer.disconnect();
  await admin.disconnect();
  process.stdout.write(JSON.stringify({ offsets, brokers: cluster.brokers }) + '\n');
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => {
    console.error('kafkajs sasl test failed:', err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
