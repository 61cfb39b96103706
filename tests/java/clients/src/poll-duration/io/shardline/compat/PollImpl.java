package io.shardline.compat;

import java.time.Duration;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecords;

/** KafkaConsumer.poll(Duration) (KIP-266, 2.0 onwards). */
final class PollImpl implements Features.Poll {
    @Override
    public ConsumerRecords<String, String> poll(Consumer<String, String> consumer, long millis) {
        return consumer.poll(Duration.ofMillis(millis));
    }
}
