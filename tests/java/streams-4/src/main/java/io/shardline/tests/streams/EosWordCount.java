package io.shardline.tests.streams;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * The word count of {@link WordCount} (same topology: repartition topic
 * APP-words-repartition, store "counts" with changelog APP-counts-changelog)
 * as a long-running application for a test that kills brokers and this
 * process under it: processing.guarantee from the command line (the test
 * runs exactly_once_v2; at_least_once shows by hand that the test can fail),
 * internal topics with three replicas and min.insync.replicas=2, no record
 * cache, a commit every 500 ms.
 *
 * <pre>
 * Usage: EosWordCount BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR GUARANTEE TIMEOUT_S [streams.config=value ...]
 * </pre>
 *
 * One KafkaStreams instance (one stream thread) runs until a line "stop" or
 * the end of stdin arrives (then it closes cleanly) or TIMEOUT_S passes
 * (exit 1). A restarted process with the same STATE_DIR is the same Streams
 * process (Streams keeps its process id there), so under exactly_once_v2 it
 * uses the same transactional id and fences the one it replaces. JSON lines
 * on stdout for pytest: "state" (every state change), "coordinators" (once
 * RUNNING and committing: the coordinator node of the application's group and
 * of each of its open transactional ids, found with the admin client's
 * DescribeConsumerGroups, ListTransactions and DescribeTransactions, so the
 * test knows which broker to kill), "thread_error" (an uncaught exception,
 * which also makes the exit code 1) and "closed".
 */
public final class EosWordCount {

    public static void main(String[] args) {
        int code;
        try {
            code = run(args);
        } catch (Throwable e) {
            // The stream thread is not a daemon: without this exit a failed
            // main thread would leave the process running.
            e.printStackTrace();
            code = 1;
        }
        System.out.flush();
        System.exit(code);
    }

    static int run(String[] args) throws Exception {
        if (args.length < 7) {
            System.err.println("usage: EosWordCount BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR GUARANTEE"
                    + " TIMEOUT_S [k=v ...]");
            return 2;
        }
        String bootstrap = args[0];
        String input = args[1];
        String output = args[2];
        String applicationId = args[3];
        String stateDir = args[4];
        String guarantee = args[5];
        long deadline = System.currentTimeMillis() + Long.parseLong(args[6]) * 1000;

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.CLIENT_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        // The same commit interval for both guarantees, so that the only
        // difference between a passing and a failing run is the guarantee.
        // Longer than the producer's linger (100 ms): between commits
        // batches go out, so a kill finds a transaction open with records
        // in it (at exactly_once_v2's 100 ms default they mostly left at the
        // commit's flush, and a kill mostly fell between transactions).
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "500");
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        // Internal topics (repartition, changelog) survive one broker down
        // and never acknowledge a write held by one replica only.
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "3");
        props.put(StreamsConfig.topicPrefix("min.insync.replicas"), "2");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // No record cache: every count goes to the changelog and the output
        // as it changes (with 20 distinct words the cache would fold a
        // commit interval's updates into one record per word), so whatever
        // is processed twice shows.
        props.put("statestore.cache.max.bytes", "0");
        // A process killed with -9 leaves the group after 6 s (the broker's
        // minimum) instead of 45 s, so its restarted successor gets the
        // tasks back quickly.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), "6000");
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), "1500");
        props.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), "all");
        for (int i = 7; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }

        Topology topology = WordCount.buildTopology(input, output);
        AtomicBoolean failed = new AtomicBoolean(false);
        KafkaStreams streams = new KafkaStreams(topology, props);
        streams.setStateListener((to, from) -> {
            WordCount.event("state", "\"from\":" + WordCount.str(from.toString())
                    + ",\"to\":" + WordCount.str(to.toString()));
            if (to == KafkaStreams.State.ERROR) {
                failed.set(true);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            WordCount.event("thread_error", "\"error\":" + WordCount.str(String.valueOf(e)));
            e.printStackTrace();
            failed.set(true);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });

        // stdin: "stop" or its end asks for a clean close.
        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    if (line.trim().equals("stop")) {
                        break;
                    }
                }
            } catch (Exception e) {
                // treated as the end of stdin
            }
            stop.set(true);
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        streams.start();
        boolean transactional = !guarantee.equals(StreamsConfig.AT_LEAST_ONCE);
        boolean reported = false;
        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        adminProps.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        adminProps.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
        boolean timedOut = false;
        try (Admin admin = Admin.create(adminProps)) {
            while (!stop.get() && !failed.get()) {
                if (System.currentTimeMillis() > deadline) {
                    timedOut = true;
                    break;
                }
                if (!reported && streams.state() == KafkaStreams.State.RUNNING) {
                    reported = reportCoordinators(admin, applicationId, transactional);
                }
                WordCount.sleep(reported ? 100 : 500);
            }
        }
        boolean clean = streams.close(Duration.ofSeconds(60));
        WordCount.event("closed", "\"clean\":" + clean + ",\"timed_out\":" + timedOut
                + ",\"state\":" + WordCount.str(streams.state().toString()));
        return clean && !timedOut && !failed.get() ? 0 : 1;
    }

    /**
     * Prints the coordinators of the application's group and of its open
     * transactions (the stream thread's producer has one open while it
     * processes); false while the admin client cannot tell yet (no
     * transaction open at the moment, a coordinator moving). Under
     * at_least_once there are none: only the group's is printed.
     */
    static boolean reportCoordinators(Admin admin, String applicationId, boolean transactional) {
        try {
            Collection<TransactionListing> listed = admin.listTransactions().all().get(10, TimeUnit.SECONDS);
            List<String> ids = listed.stream().map(TransactionListing::transactionalId)
                    .filter(id -> id.startsWith(applicationId + "-")).sorted().collect(Collectors.toList());
            if (transactional && ids.isEmpty()) {
                return false;
            }
            Map<String, TransactionDescription> described =
                    admin.describeTransactions(ids).all().get(10, TimeUnit.SECONDS);
            ConsumerGroupDescription group = admin.describeConsumerGroups(List.of(applicationId))
                    .all().get(10, TimeUnit.SECONDS).get(applicationId);
            StringBuilder txns = new StringBuilder();
            for (Map.Entry<String, TransactionDescription> e : new TreeMap<>(described).entrySet()) {
                txns.append(txns.length() == 0 ? "" : ",").append(WordCount.str(e.getKey())).append(':')
                        .append(e.getValue().coordinatorId());
            }
            WordCount.event("coordinators", "\"group\":" + group.coordinator().id()
                    + ",\"transactions\":{" + txns + "}");
            return true;
        } catch (Exception e) {
            System.err.println("coordinators not known yet: " + e);
            return false;
        }
    }
}
