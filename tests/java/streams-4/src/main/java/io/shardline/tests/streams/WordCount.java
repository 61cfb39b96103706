package io.shardline.tests.streams;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The classic Kafka Streams word count, run until its output is complete.
 *
 * <pre>
 *   input (lines) -> flatMapValues(split on ' ') -> groupBy(word)  [repartition topic APP-words-repartition]
 *                 -> count()                                       [store "counts", changelog APP-counts-changelog]
 *                 -> output (word -> Long count)
 * </pre>
 *
 * Usage: WordCount BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR TIMEOUT_S INSTANCES LATE_LINES
 *        [--counts-at-least] [streams.config=value ...]
 * and on stdin the expected final counts, one "word count" per line.
 *
 * The driver starts INSTANCES KafkaStreams instances of the application one
 * after the other, each with its own state directory (as separate hosts
 * would), waiting for all started ones to be RUNNING before the next: every
 * start is a rebalance of the application's group that moves tasks to the
 * new instance, which restores their stores (active or standby) from the
 * changelog. Then it produces the lines of the file LATE_LINES ("-": none)
 * to INPUT, reads OUTPUT with its own consumer until the latest value of
 * every word equals the expected count (and no other word appeared), waits
 * until Streams has purged (DeleteRecords) its repartition topic up to the
 * end, and closes every instance with a timeout. It prints JSON lines
 * ("event": state / late_lines_produced / counts_complete /
 * repartition_purged / closed) for pytest, and exits 1 when anything did not
 * happen in time. The source compiles against Streams 2.6 and 4.x, so it
 * sticks to API both have.
 */
public final class WordCount {

    /**
     * Flag among the configs: counts are complete when every word's count is
     * at least the expected one. At-least-once may count a record twice after
     * a failure (a broker restart), never zero times.
     */
    static final String AT_LEAST = "--counts-at-least";

    public static void main(String[] args) throws Exception {
        if (args.length < 8) {
            System.err.println("usage: WordCount BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR TIMEOUT_S"
                    + " INSTANCES LATE_LINES [k=v ...]");
            System.exit(2);
        }
        String bootstrap = args[0];
        String input = args[1];
        String output = args[2];
        String applicationId = args[3];
        String stateDir = args[4];
        long deadline = System.currentTimeMillis() + Long.parseLong(args[5]) * 1000;
        int instances = Integer.parseInt(args[6]);
        List<String> lateLines = args[7].equals("-")
                ? new ArrayList<>() : Files.readAllLines(Paths.get(args[7]), StandardCharsets.UTF_8);
        Map<String, Long> expected = readExpected();

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        // Commit (and so flush the record cache, forward counts, purge the
        // repartition topic) often, so a small test finishes in seconds.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        // Streams >= 2.8 purges repartition topics on its own interval (30 s
        // by default); 2.6 purges after every commit and ignores this key.
        props.put("repartition.purge.interval.ms", "100");
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        boolean atLeast = false;
        for (int i = 8; i < args.length; i++) {
            if (args[i].equals(AT_LEAST)) {
                atLeast = true;
                continue;
            }
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }

        Topology topology = buildTopology(input, output);
        System.err.println(topology.describe());

        List<String> errors = new ArrayList<>();
        List<KafkaStreams> started = new ArrayList<>();
        boolean ok = true;
        try {
            for (int i = 0; i < instances && ok; i++) {
                started.add(startInstance(topology, props, stateDir, i, errors));
                ok = awaitRunning(started, deadline, errors);
            }
            if (ok && !lateLines.isEmpty()) {
                produceLines(bootstrap, input, lateLines);
            }
            ok = ok && awaitCounts(bootstrap, output, expected, atLeast, deadline, errors)
                    && awaitRepartitionPurged(bootstrap, applicationId + "-words-repartition", deadline, errors);
        } finally {
            for (int i = 0; i < started.size(); i++) {
                KafkaStreams streams = started.get(i);
                boolean clean = streams.close(Duration.ofSeconds(30));
                event("closed", "\"instance\":" + i + ",\"clean\":" + clean
                        + ",\"state\":" + str(streams.state().toString()));
                ok = ok && clean;
            }
        }
        synchronized (errors) {
            ok = ok && errors.isEmpty();
            for (String e : errors) {
                System.err.println("ERROR: " + e);
            }
        }
        System.out.flush();
        System.exit(ok ? 0 : 1);
    }

    static KafkaStreams startInstance(Topology topology, Properties common, String stateDir, int instance,
                                      List<String> errors) {
        Properties props = new Properties();
        props.putAll(common);
        // One state directory per instance, as on separate hosts.
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir + "/instance-" + instance);
        props.put(StreamsConfig.CLIENT_ID_CONFIG, common.get(StreamsConfig.APPLICATION_ID_CONFIG) + "-" + instance);
        KafkaStreams streams = new KafkaStreams(topology, props);
        streams.setStateListener((to, from) -> {
            event("state", "\"instance\":" + instance + ",\"from\":" + str(from.toString())
                    + ",\"to\":" + str(to.toString()));
            if (to == KafkaStreams.State.ERROR) {
                synchronized (errors) {
                    errors.add("instance " + instance + " went to ERROR (a stream thread died; see stderr)");
                }
            }
        });
        streams.start();
        return streams;
    }

    static boolean awaitRunning(List<KafkaStreams> instances, long deadline, List<String> errors) {
        while (System.currentTimeMillis() < deadline && !hasErrors(errors)) {
            boolean all = true;
            for (KafkaStreams s : instances) {
                all &= s.state() == KafkaStreams.State.RUNNING;
            }
            if (all) {
                return true;
            }
            sleep(50);
        }
        synchronized (errors) {
            errors.add("not all of " + instances.size() + " instances RUNNING in time");
        }
        return false;
    }

    /** Lines keyed by their index in the file (as pytest keys the first ones). */
    static void produceLines(String bootstrap, String topic, List<String> lines) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer =
                     new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> sends = new ArrayList<>();
            for (int i = 0; i < lines.size(); i++) {
                sends.add(producer.send(new ProducerRecord<>(topic, "late-" + i, lines.get(i))));
            }
            for (Future<RecordMetadata> f : sends) {
                f.get(30, TimeUnit.SECONDS);
            }
        }
        event("late_lines_produced", "\"lines\":" + lines.size());
    }

    static Topology buildTopology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .filter((key, word) -> !word.isEmpty())
                // Re-keying by word makes Streams repartition through APP-words-repartition.
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long()))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static boolean atLeast(Map<String, Long> latest, Map<String, Long> expected) {
        if (!latest.keySet().equals(expected.keySet())) {
            return false;
        }
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            if (latest.get(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    /**
     * Reads OUTPUT from the beginning until latest-value-per-word == expected
     * (or, with AT_LEAST, >= expected for the same words).
     */
    static boolean awaitCounts(String bootstrap, String output, Map<String, Long> expected, boolean atLeast,
                               long deadline, List<String> errors) {
        Map<String, Long> latest = new TreeMap<>();
        long records = 0;
        try (KafkaConsumer<String, Long> consumer = plainConsumer(bootstrap, new LongDeserializer())) {
            List<TopicPartition> parts = partitionsOf(consumer, output, deadline);
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            while (System.currentTimeMillis() < deadline && !hasErrors(errors)) {
                for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                    latest.put(r.key(), r.value());
                    records++;
                }
                if (atLeast ? atLeast(latest, expected) : latest.equals(expected)) {
                    event("counts_complete", "\"output_records\":" + records + ",\"words\":" + latest.size());
                    return true;
                }
            }
        }
        Map<String, String> diff = new TreeMap<>();
        for (String w : expected.keySet()) {
            if (!expected.get(w).equals(latest.get(w))) {
                diff.put(w, "expected " + expected.get(w) + " latest " + latest.get(w));
            }
        }
        for (String w : latest.keySet()) {
            if (!expected.containsKey(w)) {
                diff.put(w, "unexpected word, latest " + latest.get(w));
            }
        }
        synchronized (errors) {
            errors.add("output incomplete after " + records + " records; differences: " + diff);
        }
        return false;
    }

    /**
     * Streams deletes (DeleteRecords) what it has consumed and committed from
     * its repartition topics; once everything is processed that is the whole
     * topic, so the log start offset of every partition reaches its end offset.
     */
    static boolean awaitRepartitionPurged(String bootstrap, String topic, long deadline, List<String> errors) {
        Map<TopicPartition, Long> begin = new HashMap<>();
        Map<TopicPartition, Long> end = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = plainConsumer(bootstrap, new StringDeserializer())) {
            List<TopicPartition> parts = partitionsOf(consumer, topic, deadline);
            while (System.currentTimeMillis() < deadline && !hasErrors(errors)) {
                begin = consumer.beginningOffsets(parts);
                end = consumer.endOffsets(parts);
                if (begin.equals(end)) {
                    StringBuilder offsets = new StringBuilder();
                    for (TopicPartition tp : parts) {
                        offsets.append(offsets.length() == 0 ? "" : ",").append('"').append(tp.partition())
                                .append("\":").append(end.get(tp));
                    }
                    event("repartition_purged", "\"topic\":" + str(topic) + ",\"end_offsets\":{" + offsets + "}");
                    return true;
                }
                sleep(200);
            }
        }
        synchronized (errors) {
            errors.add(topic + " not purged: beginning offsets " + begin + ", end offsets " + end);
        }
        return false;
    }

    static <V> KafkaConsumer<String, V> plainConsumer(String bootstrap,
                                                      org.apache.kafka.common.serialization.Deserializer<V> values) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p, new StringDeserializer(), values);
    }

    static List<TopicPartition> partitionsOf(KafkaConsumer<?, ?> consumer, String topic, long deadline) {
        while (true) {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, Duration.ofSeconds(5));
            if (infos != null && !infos.isEmpty()) {
                List<TopicPartition> parts = new ArrayList<>();
                for (PartitionInfo pi : infos) {
                    parts.add(new TopicPartition(topic, pi.partition()));
                }
                return parts;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("no metadata for " + topic);
            }
            sleep(200);
        }
    }

    static Map<String, Long> readExpected() throws Exception {
        Map<String, Long> expected = new TreeMap<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            line = line.trim();
            if (!line.isEmpty()) {
                String[] wc = line.split(" ");
                expected.put(wc[0], Long.parseLong(wc[1]));
            }
        }
        return expected;
    }

    static boolean hasErrors(List<String> errors) {
        synchronized (errors) {
            return !errors.isEmpty();
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static synchronized void event(String name, String fields) {
        System.out.println("{\"event\":" + str(name) + ",\"ms\":" + System.currentTimeMillis() + "," + fields + "}");
        System.out.flush();
    }

    /** A JSON string literal (words and state names are plain ASCII here). */
    static String str(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
