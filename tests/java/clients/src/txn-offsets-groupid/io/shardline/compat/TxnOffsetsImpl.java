package io.shardline.compat;

import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;

/** sendOffsetsToTransaction(offsets, groupId): the only form before 2.5 (KIP-447), gone in 4.0. */
final class TxnOffsetsImpl implements Features.TxnOffsets {
    @SuppressWarnings("deprecation")
    @Override
    public String send(KafkaProducer<String, String> producer, Map<TopicPartition, OffsetAndMetadata> offsets,
                       Consumer<String, String> consumer, String group) {
        producer.sendOffsetsToTransaction(offsets, group);
        return "groupId";
    }

    @SuppressWarnings("deprecation")
    @Override
    public Long committed(Consumer<String, String> consumer, TopicPartition tp) {
        OffsetAndMetadata om = consumer.committed(tp);
        return om == null ? null : om.offset();
    }
}
