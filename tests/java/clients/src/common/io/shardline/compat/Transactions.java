package io.shardline.compat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
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
 * Transactions (KIP-98) as one kafka-clients version does them; prints what
 * it sent and read, the Python tests (test_java_transactions.py) judge.
 *
 *   txn-produce BOOTSTRAP PREFIX
 *       on topics PREFIX-data (2 partitions), PREFIX-in, PREFIX-out,
 *       PREFIX-fence and PREFIX-lso (1 partition each), which must exist:
 *       txn-pattern  two producers' transactions interleaved over both
 *                    partitions, committed or aborted by a fixed plan;
 *       txn-ctp      consume-transform-produce: PREFIX-in to PREFIX-out with
 *                    the group PREFIX-g's offsets in the transaction, the
 *                    first transaction committed, the second aborted;
 *       txn-fence    a second producer with the same transactional.id fences
 *                    the first, whose next send and commit fail;
 *       txn-hold-open a committed transaction on PREFIX-lso, then one left
 *                    open (with offsets for group PREFIX-hg), then another
 *                    producer's committed transaction and a plain record
 *                    behind it; waits for the line "commit" on stdin, then
 *       txn-hold-commit commits the open transaction.
 *   txn-consume BOOTSTRAP TOPIC:COMMITTED:ALL[,...] LSO_TOPIC[,...]
 *       txn-read-committed / txn-read-uncommitted: every partition of the
 *       topics from the beginning, until COMMITTED (ALL) records came;
 *       txn-lso-open: a read_committed consumer of the LSO topics (each held
 *       by an open transaction) reads what it gets; waits for the line "go"
 *       on stdin, then txn-lso-committed: the same consumer reads on.
 */
final class Transactions {
    static final String[][] ROUNDS = {{"commit", "abort"}, {"abort", "commit"}, {"commit", "commit"}, {"abort", "abort"}};
    static final int RECORDS_PER_TXN = 3;
    static final int CTP_INPUT = 10;
    static final long HOLD_OFFSET = 7;
    /** Before the LSO of each hold topic: the 2 records of the committed transaction. */
    static final int LSO_BEFORE = 2;
    /** Every data record of a hold topic once the open transaction commits. */
    static final int LSO_ALL = 8;

    final Driver d;
    final Features.Txn txn;
    final Features.TxnOffsets offsets;
    final BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    final List<String> none = Collections.emptyList();

    Transactions(Driver d) {
        this.d = d;
        this.txn = d.txn;
        this.offsets = d.txnOffsets;
    }

    // ------------------------------------------------------------ producing

    void produce(String prefix) throws Exception {
        boolean has = txn != null && offsets != null;
        d.cap(none, "txn-pattern", has, () -> pattern(prefix + "-data", prefix));
        d.cap(none, "txn-ctp", has, () -> consumeTransformProduce(prefix));
        d.cap(none, "txn-fence", has, () -> fence(prefix + "-fence", prefix + "-fence"));
        KafkaProducer<String, String>[] held = holder();
        d.cap(none, "txn-hold-open", has, () -> holdOpen(prefix, held));
        if (held[0] == null) return;
        boolean signalled = awaitLine("commit", 300_000);
        d.cap(none, "txn-hold-commit", true, () -> {
            try {
                if (!signalled) throw new IllegalStateException("no 'commit' on stdin within 300 s");
                txn.commit(held[0]);
                return Json.obj("committed", true);
            } finally {
                held[0].close();
            }
        });
    }

    @SuppressWarnings("unchecked")
    static KafkaProducer<String, String>[] holder() {
        return new KafkaProducer[1];
    }

    KafkaProducer<String, String> txnProducer(String id) {
        Properties p = d.producerConfig("none", true);
        p.put("transactional.id", id);
        p.put("linger.ms", "0");
        // The hold transaction stays open while the other versions run.
        p.put("transaction.timeout.ms", "300000");
        return new KafkaProducer<>(p);
    }

    /** Sends one record and waits for its ack: {p, o, v}. */
    static Map<String, Object> send(KafkaProducer<String, String> p, String topic, int partition, String value)
            throws Exception {
        RecordMetadata md = p.send(new ProducerRecord<>(topic, partition, null, value))
                .get(Driver.WAIT_MS, TimeUnit.MILLISECONDS);
        return Json.obj("p", md.partition(), "o", md.offset(), "v", value);
    }

    void end(KafkaProducer<String, String> p, String outcome) {
        if (outcome.equals("commit")) txn.commit(p);
        else txn.abort(p);
    }

    /**
     * Producers a and b each run a transaction per round, their records
     * interleaved (a to partitions 0,1,0 and b to 1,0,1, each acked before
     * the next is sent); a ends first, b second, as ROUNDS says.
     */
    Map<String, Object> pattern(String topic, String prefix) throws Exception {
        List<Map<String, Object>> txns = new ArrayList<>();
        try (KafkaProducer<String, String> a = txnProducer(prefix + "-a");
             KafkaProducer<String, String> b = txnProducer(prefix + "-b")) {
            txn.init(a);
            txn.init(b);
            for (int r = 0; r < ROUNDS.length; r++) {
                txn.begin(a);
                txn.begin(b);
                List<Map<String, Object>> ra = new ArrayList<>();
                List<Map<String, Object>> rb = new ArrayList<>();
                for (int j = 0; j < RECORDS_PER_TXN; j++) {
                    ra.add(send(a, topic, j % 2, d.version + "-a" + r + "-" + j));
                    rb.add(send(b, topic, (j + 1) % 2, d.version + "-b" + r + "-" + j));
                }
                end(a, ROUNDS[r][0]);
                end(b, ROUNDS[r][1]);
                txns.add(Json.obj("who", "a", "round", r, "outcome", ROUNDS[r][0], "records", ra));
                txns.add(Json.obj("who", "b", "round", r, "outcome", ROUNDS[r][1], "records", rb));
            }
        }
        return Json.obj("topic", topic, "txns", txns);
    }

    /**
     * A group member reads PREFIX-in (read_committed) and, per transaction,
     * writes "out-" + value of 5 input records to PREFIX-out with the input
     * offset after them; the first transaction commits, the second aborts,
     * so the group's offset must stay at 5.
     */
    Map<String, Object> consumeTransformProduce(String prefix) throws Exception {
        String in = prefix + "-in";
        String out = prefix + "-out";
        String group = prefix + "-g";
        TopicPartition tp = new TopicPartition(in, 0);
        List<Map<String, Object>> input = new ArrayList<>();
        try (KafkaProducer<String, String> plain = d.producer("none", false)) {
            for (int i = 0; i < CTP_INPUT; i++) input.add(send(plain, in, 0, "in-" + i));
        }
        Properties cp = d.consumerConfig(group);
        cp.put("isolation.level", "read_committed");
        List<Map<String, Object>> txns = new ArrayList<>();
        String api = null;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp);
             KafkaProducer<String, String> t = txnProducer(prefix + "-ctp")) {
            c.subscribe(Collections.singletonList(in));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + Driver.WAIT_MS;
            while (got.size() < CTP_INPUT && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : d.poll.poll(c, 500)) got.add(r);
            }
            txn.init(t);
            for (int k = 0; k * 5 < got.size(); k++) {
                String outcome = k == 0 ? "commit" : "abort";
                txn.begin(t);
                List<Map<String, Object>> written = new ArrayList<>();
                List<Long> consumed = new ArrayList<>();
                for (ConsumerRecord<String, String> r : got.subList(k * 5, Math.min(got.size(), k * 5 + 5))) {
                    consumed.add(r.offset());
                    written.add(send(t, out, 0, "out-" + r.value()));
                }
                long next = consumed.get(consumed.size() - 1) + 1;
                api = offsets.send(t, Collections.singletonMap(tp, new OffsetAndMetadata(next)), c, group);
                end(t, outcome);
                Long after = offsets.committed(c, tp);
                // The commit markers reach the group after EndTxn returns, and
                // before 2.5 (KIP-447's require_stable) OffsetFetch does not
                // wait for them: wait (bounded) for the committed offset.
                long until = System.currentTimeMillis() + Driver.WAIT_MS;
                while (outcome.equals("commit") && (after == null || after < next)
                        && System.currentTimeMillis() < until) {
                    Thread.sleep(100);
                    after = offsets.committed(c, tp);
                }
                txns.add(Json.obj("outcome", outcome, "consumed", consumed, "offset", next, "records", written,
                        "committed_after", after));
            }
        }
        return Json.obj("group", group, "input", input, "api", api, "txns", txns);
    }

    /**
     * Producer 1 commits f0 and sends f1 in a new transaction; producer 2
     * with the same transactional.id initializes (aborting f1's
     * transaction); producer 1's send of f2 and its commit must fail;
     * producer 2 commits f3.
     */
    Map<String, Object> fence(String topic, String id) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        try (KafkaProducer<String, String> first = txnProducer(id)) {
            txn.init(first);
            txn.begin(first);
            out.put("f0", send(first, topic, 0, "f0"));
            txn.commit(first);
            txn.begin(first);
            out.put("f1", send(first, topic, 0, "f1"));
            try (KafkaProducer<String, String> second = txnProducer(id)) {
                txn.init(second);
                try {
                    out.put("f2", send(first, topic, 0, "f2"));
                } catch (Exception e) {
                    out.put("send_error", causes(e));
                }
                try {
                    txn.commit(first);
                    out.put("commit_error", null);
                } catch (Exception e) {
                    out.put("commit_error", causes(e));
                }
                txn.begin(second);
                out.put("f3", send(second, topic, 0, "f3"));
                txn.commit(second);
            }
        }
        return out;
    }

    /** The exception's class names, outermost first. */
    static List<String> causes(Throwable e) {
        List<String> out = new ArrayList<>();
        for (Throwable t = e; t != null && out.size() < 5; t = t.getCause()) out.add(t.getClass().getName());
        return out;
    }

    Map<String, Object> holdOpen(String prefix, KafkaProducer<String, String>[] held) throws Exception {
        String topic = prefix + "-lso";
        String group = prefix + "-hg";
        List<Map<String, Object>> committed = new ArrayList<>();
        List<Map<String, Object>> open = new ArrayList<>();
        List<Map<String, Object>> other = new ArrayList<>();
        KafkaProducer<String, String> h = txnProducer(prefix + "-hold");
        held[0] = h;
        txn.init(h);
        txn.begin(h);
        for (int i = 0; i < LSO_BEFORE; i++) committed.add(send(h, topic, 0, "h" + i));
        txn.commit(h);
        txn.begin(h);
        for (int i = 0; i < 3; i++) open.add(send(h, topic, 0, "o" + i));
        try (KafkaConsumer<String, String> c = d.consumer(group)) {
            offsets.send(h, Collections.singletonMap(new TopicPartition(prefix + "-in", 0),
                    new OffsetAndMetadata(HOLD_OFFSET)), c, group);
        }
        try (KafkaProducer<String, String> o = txnProducer(prefix + "-other")) {
            txn.init(o);
            txn.begin(o);
            for (int i = 0; i < 2; i++) other.add(send(o, topic, 0, "x" + i));
            txn.commit(o);
        }
        Map<String, Object> plain;
        try (KafkaProducer<String, String> p = d.producer("none", false)) {
            plain = send(p, topic, 0, "n0");
        }
        return Json.obj("topic", topic, "group", group, "offset", HOLD_OFFSET, "committed", committed,
                "open", open, "other", other, "plain", plain);
    }

    /** Waits (bounded) for a line on stdin; false when it did not come. */
    boolean awaitLine(String expected, long ms) throws Exception {
        long deadline = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < deadline) {
            if (stdin.ready()) {
                String line = stdin.readLine();
                if (line == null) return false;
                if (line.trim().equals(expected)) return true;
            } else {
                Thread.sleep(20);
            }
        }
        return false;
    }

    // ------------------------------------------------------------ consuming

    KafkaConsumer<String, String> consumer(String isolation) {
        Properties p = d.consumerConfig(null);
        p.put("isolation.level", isolation);
        return new KafkaConsumer<>(p);
    }

    void consume(String dataSpec, String lsoTopics) throws Exception {
        boolean has = txn != null;
        List<TopicPartition> data = new ArrayList<>();
        int committed = 0;
        int all = 0;
        for (String item : dataSpec.split(",")) {
            String[] f = item.split(":");
            committed += Integer.parseInt(f[1]);
            all += Integer.parseInt(f[2]);
            try (KafkaConsumer<String, String> c = d.consumer(null)) {
                for (PartitionInfo pi : c.partitionsFor(f[0])) data.add(new TopicPartition(f[0], pi.partition()));
            }
        }
        int wantCommitted = committed;
        int wantAll = all;
        d.cap(none, "txn-read-committed", has, () -> readAll("read_committed", data, wantCommitted));
        d.cap(none, "txn-read-uncommitted", has, () -> readAll("read_uncommitted", data, wantAll));
        if (!has) return;

        List<TopicPartition> lso = new ArrayList<>();
        for (String t : lsoTopics.split(",")) lso.add(new TopicPartition(t, 0));
        try (KafkaConsumer<String, String> c = consumer("read_committed");
             KafkaConsumer<String, String> uncommitted = consumer("read_uncommitted")) {
            c.assign(lso);
            c.seekToBeginning(lso);
            List<Map<String, Object>> before = new ArrayList<>();
            d.cap(none, "txn-lso-open", true, () -> {
                poll(c, before, LSO_BEFORE * lso.size(), 2000);
                return Json.obj("records", before, "positions", positions(c, lso),
                        "end_committed", ends(c, lso), "end_uncommitted", ends(uncommitted, lso));
            });
            boolean signalled = awaitLine("go", 300_000);
            d.cap(none, "txn-lso-committed", true, () -> {
                if (!signalled) throw new IllegalStateException("no 'go' on stdin within 300 s");
                List<Map<String, Object>> after = new ArrayList<>();
                poll(c, after, (LSO_ALL - LSO_BEFORE) * lso.size(), 500);
                return Json.obj("records", after, "positions", positions(c, lso), "end_committed", ends(c, lso));
            });
        }
    }

    Map<String, Object> readAll(String isolation, List<TopicPartition> tps, int expected) {
        try (KafkaConsumer<String, String> c = consumer(isolation)) {
            return Json.obj("isolation", isolation, "records", d.read(c, tps, expected));
        }
    }

    /** Polls until `expected` records came (bounded), then `extraMs` more for any that should not come. */
    void poll(KafkaConsumer<String, String> c, List<Map<String, Object>> out, int expected, long extraMs) {
        long deadline = System.currentTimeMillis() + Driver.WAIT_MS;
        while (out.size() < expected && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : d.poll.poll(c, 200)) out.add(d.tagged(r));
        }
        long extra = System.currentTimeMillis() + extraMs;
        while (System.currentTimeMillis() < extra) {
            for (ConsumerRecord<String, String> r : d.poll.poll(c, 200)) out.add(d.tagged(r));
        }
    }

    static Map<String, Object> positions(KafkaConsumer<String, String> c, List<TopicPartition> tps) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (TopicPartition tp : tps) out.put(tp.topic(), c.position(tp));
        return out;
    }

    Map<String, Object> ends(KafkaConsumer<String, String> c, List<TopicPartition> tps) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (TopicPartition tp : tps) out.put(tp.topic(), txn.endOffset(c, tp));
        return out;
    }
}
