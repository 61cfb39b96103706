package io.shardline.compat;

import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecords;

/** KafkaConsumer.poll(long): the only poll before 2.0, removed in 4.0. */
final class PollImpl implements Features.Poll {
    @SuppressWarnings("deprecation")
    @Override
    public ConsumerRecords<String, String> poll(Consumer<String, String> consumer, long millis) {
        return consumer.poll(millis);
    }
}
