package io.shardline.compat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;

/**
 * One kafka-clients version against a broker; prints one JSON line per result
 * (what it sent and what it read back, as observed), the Python tests judge.
 *
 *   suite BOOTSTRAP PREFIX CODECS XV_TOPIC BASE_TS [CAPABILITY...]
 *       runs the capabilities (all when none are named) on topics PREFIX-*,
 *       and writes the cross-version records into XV_TOPIC (which must exist
 *       with 2 partitions); prints {"cap": ..., ...} per capability, with
 *       "not_in_version": true where this version lacks the API, or "error".
 *   read-all BOOTSTRAP TOPIC:COUNT[,TOPIC:COUNT...]
 *       reads every partition of every topic from the beginning (assign, no
 *       group) until the total count came, and prints
 *       {"topic": ..., "records": [...]} per topic.
 *   txn-produce BOOTSTRAP PREFIX  /  txn-consume BOOTSTRAP DATA_SPEC LSO_TOPICS
 *       the transactions scenarios, see {@link Transactions}.
 *
 * Every wait is bounded, so the JVM ends on its own whatever the broker does.
 */
public final class Driver {
    static final String STRING_SER = "org.apache.kafka.common.serialization.StringSerializer";
    static final String STRING_DE = "org.apache.kafka.common.serialization.StringDeserializer";
    static final long WAIT_MS = 30_000;

    final String bootstrap;
    final String version = clientVersion();
    final Features.Poll poll = Features.load(Features.Poll.class);
    final Features.Times times = Features.load(Features.Times.class);
    final Features.Headers headers = Features.load(Features.Headers.class);
    final Features.Admin adminApi = Features.load(Features.Admin.class);
    final Features.Alter alter = Features.load(Features.Alter.class);
    final Features.Partitions partitions = Features.load(Features.Partitions.class);
    final Features.Groups groups = Features.load(Features.Groups.class);
    final Features.Txn txn = Features.load(Features.Txn.class);
    final Features.TxnOffsets txnOffsets = Features.load(Features.TxnOffsets.class);
    Object admin; // AdminClient, opened on first use

    Driver(String bootstrap) {
        this.bootstrap = bootstrap;
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: suite BOOTSTRAP PREFIX CODECS XV_TOPIC BASE_TS [CAP...] | read-all BOOTSTRAP TOPIC:COUNT,...");
            System.exit(2);
        }
        Driver d = new Driver(args[1]);
        emit(Json.obj("client_version", d.version));
        try {
            switch (args[0]) {
                case "suite":
                    d.suite(args[2], Arrays.asList(args[3].split(",")), args[4], Long.parseLong(args[5]),
                            Arrays.asList(args).subList(6, args.length));
                    break;
                case "read-all":
                    d.readAll(args[2]);
                    break;
                case "txn-produce":
                    new Transactions(d).produce(args[2]);
                    break;
                case "txn-consume":
                    new Transactions(d).consume(args[2], args[3]);
                    break;
                default:
                    System.err.println("unknown command " + args[0]);
                    System.exit(2);
            }
        } finally {
            if (d.adminApi != null) d.adminApi.close();
        }
        System.out.flush();
        // Client threads (e.g. a stuck producer I/O thread) must not keep the JVM alive.
        System.exit(0);
    }

    static void emit(Map<String, Object> line) {
        System.out.println(Json.write(line));
        System.out.flush();
    }

    interface Capability {
        Map<String, Object> run() throws Exception;
    }

    /** Runs one capability; a missing API (null feature) is reported, not run. */
    void cap(List<String> only, String name, boolean inVersion, Capability body) {
        if (!only.isEmpty() && !only.contains(name)) return;
        if (!inVersion) {
            emit(Json.obj("cap", name, "not_in_version", true));
            return;
        }
        long t0 = System.nanoTime();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("cap", name);
        try {
            out.putAll(body.run());
        } catch (Throwable e) {
            StringWriter sw = new StringWriter();
            e.printStackTrace(new PrintWriter(sw));
            out.put("error", sw.toString());
        }
        out.put("ms", (System.nanoTime() - t0) / 1_000_000);
        emit(out);
    }

    /** Whether this kafka-clients is major.minor or newer ("0.11.0.3" is 0.11). */
    boolean atLeast(int major, int minor) {
        String[] p = version.split("[.-]");
        int ma = Integer.parseInt(p[0]);
        int mi = Integer.parseInt(p[1]);
        return ma > major || (ma == major && mi >= minor);
    }

    /** kafka-clients' own version file (present in every version; AppInfoParser is not where it was in 4.x). */
    static String clientVersion() {
        Properties p = new Properties();
        try (java.io.InputStream in = Driver.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            p.load(in);
        } catch (Exception e) {
            throw new IllegalStateException("kafka/kafka-version.properties", e);
        }
        return p.getProperty("version").trim();
    }

    /** Partition count as a fresh consumer's metadata shows it. */
    int partitionCount(String topic) {
        try (KafkaConsumer<String, String> c = consumer(null)) {
            return c.partitionsFor(topic).size();
        }
    }

    Object admin() {
        if (admin == null) admin = adminApi.open(bootstrap);
        return admin;
    }

    // ---------------------------------------------------------------- suite

    void suite(String prefix, List<String> codecs, String xvTopic, long baseTs, List<String> only) {
        String auto = prefix + "-auto";
        String created = prefix + "-admin";
        String groupTopic = prefix + "-group";
        String group = prefix + "-g";
        String timesTopic = prefix + "-times";

        cap(only, "auto-create", true, () -> {
            List<Map<String, Object>> sent = produce(auto, "none", false, 5, null, null);
            return Json.obj("topic", auto, "partitions", partitionCount(auto), "sent", sent, "read", readTopic(auto, sent.size()));
        });
        cap(only, "admin-create", adminApi != null, () -> {
            admin();
            adminApi.createTopic(created, 3, Collections.singletonMap("retention.ms", "86400000"));
            List<Map<String, Object>> sent = produce(created, "none", false, 30, null, null);
            return Json.obj("topic", created, "partitions", partitionCount(created),
                    "sent", sent, "read", readTopic(created, sent.size()));
        });
        for (String codec : codecs) {
            String topic = prefix + "-codec-" + codec;
            cap(only, "produce-" + codec, true, () -> {
                List<Map<String, Object>> sent = produce(topic, codec, false, 20, null, null);
                return Json.obj("topic", topic, "sent", sent, "read", readTopic(topic, sent.size()));
            });
        }
        // enable.idempotence exists from 0.11 (KIP-98); on by default from 3.0.
        cap(only, "idempotent", atLeast(0, 11), () -> {
            String topic = prefix + "-idem";
            List<Map<String, Object>> sent = produce(topic, "none", true, 50, null, null);
            return Json.obj("topic", topic, "sent", sent, "read", readTopic(topic, sent.size()));
        });
        cap(only, "group", true, () -> groupResume(groupTopic, group));
        // Before 2.2 (KIP-289) group.id defaulted to "": assign-only consumers
        // commit and fetch offsets under the empty group id.
        cap(only, "empty-group", !atLeast(2, 2), () -> emptyGroup(prefix + "-nogroup"));
        cap(only, "groups-admin", groups != null, () -> {
            Object a = admin();
            List<String> listed = groups.listConsumerGroups(a);
            return Json.obj("group", group, "listed", listed.contains(group),
                    "description", groups.describeConsumerGroup(a, group),
                    "offsets", groups.groupOffsets(a, group));
        });
        cap(only, "times", times != null, () -> offsetsForTimes(timesTopic, baseTs));
        cap(only, "delete-records", groups != null && times != null, () -> {
            TopicPartition tp = new TopicPartition(timesTopic, 0);
            long low = groups.deleteRecordsBefore(admin(), tp, 5);
            try (KafkaConsumer<String, String> c = consumer(null)) {
                long begin = times.beginningOffset(c, tp);
                List<Map<String, Object>> rest = read(c, Collections.singletonList(tp), 5);
                return Json.obj("low_watermark", low, "beginning_offset", begin, "read", rest);
            }
        });
        cap(only, "admin-configs", adminApi != null && alter != null, () -> {
            List<String> names = Arrays.asList("retention.ms", "cleanup.policy");
            Map<String, Object[]> before = adminApi.describeTopicConfigs(created, names);
            String api = alter.set(admin(), created, "retention.ms", "172800000");
            Map<String, Object[]> after = adminApi.describeTopicConfigs(created, names);
            return Json.obj("topic", created, "before", before, "api", api, "after", after);
        });
        cap(only, "create-partitions", partitions != null, () -> {
            partitions.increaseTo(admin(), created, 5);
            return Json.obj("topic", created, "partitions", partitionCount(created));
        });
        cap(only, "xv-write", true, () -> Json.obj("topic", xvTopic, "sent", writeCrossVersion(xvTopic, baseTs)));
    }

    /** subscribe -> commit -> close, then a new consumer of the same group resumes at the committed offset. */
    Map<String, Object> groupResume(String topic, String group) throws Exception {
        List<Map<String, Object>> sent = produce(topic, "none", false, 10, null, null);
        List<Long> first = new ArrayList<>();
        long committed;
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(Collections.singletonList(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (first.isEmpty() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : poll.poll(c, 500)) first.add(r.offset());
            }
            c.commitSync();
            committed = c.position(tp);
        }
        List<Long> second = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(Collections.singletonList(topic));
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while ((second.isEmpty() || second.get(second.size() - 1) < sent.size() - 1)
                    && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : poll.poll(c, 500)) second.add(r.offset());
            }
            c.commitSync();
        }
        return Json.obj("topic", topic, "produced", sent.size(), "first_consumer", first,
                "committed", committed, "second_consumer", second);
    }

    /** commitSync and the committed offset's use by a new consumer, both without a group.id. */
    Map<String, Object> emptyGroup(String topic) throws Exception {
        produce(topic, "none", false, 6, null, null);
        TopicPartition tp = new TopicPartition(topic, 0);
        List<Map<String, Object>> first;
        try (KafkaConsumer<String, String> c = consumer(null)) {
            first = read(c, Collections.singletonList(tp), 6);
            c.commitSync(Collections.singletonMap(tp, new OffsetAndMetadata(3)));
        }
        List<Long> resumed = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(null)) {
            c.assign(Collections.singletonList(tp)); // no seek: starts at the committed offset
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (resumed.size() < 3 && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : poll.poll(c, 500)) resumed.add(r.offset());
            }
        }
        return Json.obj("topic", topic, "first_read", first.size(), "committed", 3, "resumed", resumed);
    }

    Map<String, Object> offsetsForTimes(String topic, long base) throws Exception {
        // Timestamps base, base+1000, ..., base+9000 on offsets 0..9.
        List<Map<String, Object>> sent = produce(topic, "none", false, 10, base, null);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> c = consumer(null)) {
            c.assign(Collections.singletonList(tp));
            long[] mid = times.offsetForTime(c, tp, base + 3500);
            long[] exact = times.offsetForTime(c, tp, base + 9000);
            long[] past = times.offsetForTime(c, tp, base + 20000);
            Map<String, Object> seeked = null;
            if (mid != null) {
                c.seek(tp, mid[0]);
                long deadline = System.currentTimeMillis() + WAIT_MS;
                while (seeked == null && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : poll.poll(c, 500)) {
                        if (seeked == null) seeked = record(r);
                    }
                }
            }
            return Json.obj("topic", topic, "sent", sent, "at_3500", asList(mid), "at_9000", asList(exact),
                    "at_20000", asList(past), "after_seek", seeked);
        }
    }

    static List<Long> asList(long[] a) {
        if (a == null) return null;
        List<Long> l = new ArrayList<>();
        for (long x : a) l.add(x);
        return l;
    }

    /**
     * The cross-version data set: 12 records over partitions 0/1, one null key,
     * one null value (tombstone), explicit timestamps, headers where the version
     * has them; the first 6 uncompressed, the last 6 gzip-compressed.
     */
    List<Map<String, Object>> writeCrossVersion(String topic, long base) throws Exception {
        List<Map<String, Object>> sent = new ArrayList<>();
        for (int half = 0; half < 2; half++) {
            try (KafkaProducer<String, String> p = producer(half == 0 ? "none" : "gzip", false)) {
                List<Future<RecordMetadata>> fs = new ArrayList<>();
                List<ProducerRecord<String, String>> recs = new ArrayList<>();
                for (int i = half * 6; i < half * 6 + 6; i++) {
                    String key = i == 5 ? null : "k-" + i;
                    String value = i == 7 ? null : "value-" + i + "-from-" + version;
                    List<String[]> hs = new ArrayList<>();
                    hs.add(new String[] {"writer", version});
                    hs.add(new String[] {"i", Integer.toString(i)});
                    if (i == 4) hs.add(new String[] {"empty", ""});
                    if (i == 6) hs.add(new String[] {"null", null});
                    if (i == 8) hs.add(new String[] {"i", "again"}); // repeated key: order is kept
                    ProducerRecord<String, String> r = newRecord(topic, i % 2, base + i * 1000L, key, value, hs);
                    recs.add(r);
                    fs.add(p.send(r));
                }
                p.flush();
                for (int j = 0; j < recs.size(); j++) {
                    sent.add(sentRecord(recs.get(j), fs.get(j).get(WAIT_MS, TimeUnit.MILLISECONDS)));
                }
            }
        }
        return sent;
    }

    // -------------------------------------------------------------- read-all

    /** One consumer assigned to every partition of every topic: one JVM and one read for all writers. */
    void readAll(String spec) {
        Map<String, List<Map<String, Object>>> byTopic = new LinkedHashMap<>();
        int expected = 0;
        List<TopicPartition> tps = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(null)) {
            for (String item : spec.split(",")) {
                int colon = item.lastIndexOf(':');
                String topic = item.substring(0, colon);
                expected += Integer.parseInt(item.substring(colon + 1));
                byTopic.put(topic, new ArrayList<>());
                for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            }
            for (Map<String, Object> r : read(c, tps, expected)) {
                byTopic.get(r.get("topic")).add(r);
                r.remove("topic");
            }
        }
        byTopic.forEach((topic, records) -> emit(Json.obj("topic", topic, "records", records)));
    }

    // --------------------------------------------------------------- helpers

    KafkaProducer<String, String> producer(String codec, boolean idempotent) {
        return new KafkaProducer<>(producerConfig(codec, idempotent));
    }

    Properties producerConfig(String codec, boolean idempotent) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", STRING_SER);
        p.put("value.serializer", STRING_SER);
        p.put("compression.type", codec);
        p.put("acks", "all");
        p.put("linger.ms", "20"); // several records per batch, so codecs compress batches
        p.put("max.block.ms", Long.toString(WAIT_MS));
        p.put("request.timeout.ms", Long.toString(WAIT_MS));
        if (!atLeast(2, 1)) {
            // Before 2.1 retries defaulted to 0, so a produce racing a new
            // topic's leader election failed at once; retry, one request in
            // flight so that retries keep the order.
            p.put("retries", "10");
            p.put("max.in.flight.requests.per.connection", "1");
        }
        if (idempotent) {
            p.put("enable.idempotence", "true");
            p.put("retries", Integer.toString(Integer.MAX_VALUE));
            // 0.11 refuses idempotence with more than one request in flight.
            if (!atLeast(1, 0)) p.put("max.in.flight.requests.per.connection", "1");
        }
        return p;
    }

    KafkaConsumer<String, String> consumer(String group) {
        return new KafkaConsumer<>(consumerConfig(group));
    }

    Properties consumerConfig(String group) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.deserializer", STRING_DE);
        p.put("value.deserializer", STRING_DE);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        if (group != null) {
            p.put("group.id", group);
            p.put("max.poll.records", "4"); // the first consumer stops part-way
        }
        return p;
    }

    ProducerRecord<String, String> newRecord(String topic, Integer partition, Long ts, String key, String value,
                                             List<String[]> hs) {
        if (headers != null) return headers.record(topic, partition, ts, key, value, hs);
        return new ProducerRecord<>(topic, partition, ts, key, value);
    }

    /** Sends n keyed records (keys k-0..k-(n/2), so keys repeat), waits for every ack. */
    List<Map<String, Object>> produce(String topic, String codec, boolean idempotent, int n, Long baseTs,
                                      Integer partition) throws Exception {
        List<Map<String, Object>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> p = producer(codec, idempotent)) {
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Long ts = baseTs == null ? null : baseTs + i * 1000L;
                List<String[]> hs = new ArrayList<>();
                hs.add(new String[] {"n", Integer.toString(i)});
                // Values long and repetitive enough for every codec to shrink them.
                String value = "value-" + i + "-" + codec + "-" + "abcdefgh".repeat(8);
                ProducerRecord<String, String> r = newRecord(topic, partition, ts, "k-" + (i % (n / 2 + 1)), value, hs);
                recs.add(r);
                fs.add(p.send(r));
            }
            p.flush();
            for (int i = 0; i < n; i++) {
                sent.add(sentRecord(recs.get(i), fs.get(i).get(WAIT_MS, TimeUnit.MILLISECONDS)));
            }
        }
        return sent;
    }

    Map<String, Object> sentRecord(ProducerRecord<String, String> r, RecordMetadata md) {
        Map<String, Object> m = Json.obj("p", md.partition(), "o", md.offset(), "k", r.key(), "v", r.value(),
                "ts", md.timestamp());
        if (headers != null) m.put("h", pairs(headers.headers(r)));
        return m;
    }

    static List<List<String>> pairs(List<String[]> hs) {
        List<List<String>> out = new ArrayList<>();
        for (String[] h : hs) out.add(Arrays.asList(h));
        return out;
    }

    Map<String, Object> record(ConsumerRecord<String, String> r) {
        Map<String, Object> m = Json.obj("p", r.partition(), "o", r.offset(), "k", r.key(), "v", r.value(),
                "ts", r.timestamp(), "tt", String.valueOf(r.timestampType()));
        if (headers != null) m.put("h", pairs(headers.headers(r)));
        return m;
    }

    Map<String, Object> tagged(ConsumerRecord<String, String> r) {
        Map<String, Object> m = Json.obj("topic", r.topic());
        m.putAll(record(r));
        return m;
    }

    /** Every record of every partition of the topic, read from the beginning. */
    List<Map<String, Object>> readTopic(String topic, int expected) {
        try (KafkaConsumer<String, String> c = consumer(null)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
            List<Map<String, Object>> out = read(c, tps, expected);
            for (Map<String, Object> r : out) r.remove("topic");
            return out;
        }
    }

    /** Reads until `expected` records came (or WAIT_MS passed), then polls once more to catch extras. */
    /** Records carry their "topic" (readAll sorts them by it). */
    List<Map<String, Object>> read(KafkaConsumer<String, String> c, List<TopicPartition> tps, int expected) {
        c.assign(tps);
        c.seekToBeginning(tps);
        List<Map<String, Object>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (out.size() < expected && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : poll.poll(c, 500)) out.add(tagged(r));
        }
        for (ConsumerRecord<String, String> r : poll.poll(c, 200)) out.add(tagged(r));
        return out;
    }
}
