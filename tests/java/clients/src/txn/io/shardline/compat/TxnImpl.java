package io.shardline.compat;

import java.util.Collections;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;

/** The transactional producer API (KIP-98), the same from 0.11 to 4.x. */
final class TxnImpl implements Features.Txn {
    @Override
    public void init(KafkaProducer<String, String> producer) {
        producer.initTransactions();
    }

    @Override
    public void begin(KafkaProducer<String, String> producer) {
        producer.beginTransaction();
    }

    @Override
    public void commit(KafkaProducer<String, String> producer) {
        producer.commitTransaction();
    }

    @Override
    public void abort(KafkaProducer<String, String> producer) {
        producer.abortTransaction();
    }

    @Override
    public long endOffset(Consumer<String, String> consumer, TopicPartition tp) {
        return consumer.endOffsets(Collections.singletonList(tp)).get(tp);
    }
}
