package io.shardline.compat;

import java.util.Collections;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;

/**
 * sendOffsetsToTransaction(offsets, consumer.groupMetadata()) (KIP-447, 2.5
 * onwards): the group's generation and member id go with the offsets, so a
 * member that lost its partitions cannot commit; committed(Set) from 2.4.
 */
final class TxnOffsetsImpl implements Features.TxnOffsets {
    @Override
    public String send(KafkaProducer<String, String> producer, Map<TopicPartition, OffsetAndMetadata> offsets,
                       Consumer<String, String> consumer, String group) {
        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
        return "groupMetadata";
    }

    @Override
    public Long committed(Consumer<String, String> consumer, TopicPartition tp) {
        OffsetAndMetadata om = consumer.committed(Collections.singleton(tp)).get(tp);
        return om == null ? null : om.offset();
    }
}
