package io.shardline.compat;

import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * The parts of the client API that not every kafka-clients version has. Each
 * interface is implemented by a class in one of the slot directories (see
 * clients/pom.xml); a module whose version lacks the API has no such class,
 * and load() returns null, which the driver reports as "not in version".
 * AdminClient does not exist before 0.11, so admin handles are passed as
 * Object and cast by the implementations.
 */
final class Features {
    private Features() {}

    interface Poll {
        ConsumerRecords<String, String> poll(Consumer<String, String> consumer, long millis);
    }

    interface Times {
        /** offsetsForTimes for one partition: {offset, timestamp}, or null when no record is at or after ts. */
        long[] offsetForTime(Consumer<String, String> consumer, TopicPartition tp, long ts);

        long beginningOffset(Consumer<String, String> consumer, TopicPartition tp);
    }

    interface Headers {
        ProducerRecord<String, String> record(String topic, Integer partition, Long timestamp,
                                              String key, String value, List<String[]> headers);

        /** The record's headers as [key, value-or-null] pairs, in order. */
        List<String[]> headers(ConsumerRecord<String, String> record);

        List<String[]> headers(ProducerRecord<String, String> record);
    }

    interface Admin extends AutoCloseable {
        /** Opens the AdminClient and returns it (as Object, see above). */
        Object open(String bootstrap);

        void createTopic(String topic, int partitions, Map<String, String> configs) throws Exception;

        /** name -> [value, isDefault] for the given topic config names. */
        Map<String, Object[]> describeTopicConfigs(String topic, List<String> names) throws Exception;
    }

    interface Alter {
        /** Sets one topic config; returns the API used ("alterConfigs" or "incrementalAlterConfigs"). */
        String set(Object admin, String topic, String name, String value) throws Exception;
    }

    interface Partitions {
        void increaseTo(Object admin, String topic, int total) throws Exception;
    }

    interface Groups {
        List<String> listConsumerGroups(Object admin) throws Exception;

        /** state, member count, partition assignor protocol ("" when empty). */
        Map<String, Object> describeConsumerGroup(Object admin, String group) throws Exception;

        /** Committed offsets of the group: "topic/partition" -> offset. */
        Map<String, Long> groupOffsets(Object admin, String group) throws Exception;

        /** deleteRecords before `offset`; returns the new low watermark. */
        long deleteRecordsBefore(Object admin, TopicPartition tp, long offset) throws Exception;
    }

    /** Transactional producers (KIP-98, 0.11 onwards). */
    interface Txn {
        void init(KafkaProducer<String, String> producer);

        void begin(KafkaProducer<String, String> producer);

        void commit(KafkaProducer<String, String> producer);

        void abort(KafkaProducer<String, String> producer);

        /** endOffsets: the last stable offset for a read_committed consumer, else the high watermark. */
        long endOffset(Consumer<String, String> consumer, TopicPartition tp);
    }

    /** sendOffsetsToTransaction and reading a group's committed offset, whose API changed over the versions. */
    interface TxnOffsets {
        /** Adds the offsets to the producer's transaction; returns the API used ("groupId" or "groupMetadata"). */
        String send(KafkaProducer<String, String> producer, Map<TopicPartition, OffsetAndMetadata> offsets,
                    Consumer<String, String> consumer, String group);

        /** The consumer's group's committed offset of tp, or null. */
        Long committed(Consumer<String, String> consumer, TopicPartition tp);
    }

    @SuppressWarnings("unchecked")
    static <T> T load(Class<T> type) {
        String impl = "io.shardline.compat." + type.getSimpleName() + "Impl";
        try {
            return (T) Class.forName(impl).getDeclaredConstructor().newInstance();
        } catch (ClassNotFoundException e) {
            return null;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(impl, e);
        }
    }
}
