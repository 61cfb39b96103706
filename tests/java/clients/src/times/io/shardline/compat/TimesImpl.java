package io.shardline.compat;

import java.util.Collections;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.common.TopicPartition;

/** offsetsForTimes and beginningOffsets (KIP-79, 0.10.1 onwards). */
final class TimesImpl implements Features.Times {
    @Override
    public long[] offsetForTime(Consumer<String, String> consumer, TopicPartition tp, long ts) {
        OffsetAndTimestamp found = consumer.offsetsForTimes(Collections.singletonMap(tp, ts)).get(tp);
        return found == null ? null : new long[] {found.offset(), found.timestamp()};
    }

    @Override
    public long beginningOffset(Consumer<String, String> consumer, TopicPartition tp) {
        return consumer.beginningOffsets(Collections.singletonList(tp)).get(tp);
    }
}
