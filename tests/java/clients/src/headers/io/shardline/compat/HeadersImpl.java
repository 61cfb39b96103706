package io.shardline.compat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

/** Record headers (KIP-82, 0.11 onwards). */
final class HeadersImpl implements Features.Headers {
    @Override
    public ProducerRecord<String, String> record(String topic, Integer partition, Long timestamp,
                                                 String key, String value, List<String[]> headers) {
        List<Header> hs = new ArrayList<>();
        for (String[] h : headers) {
            hs.add(new RecordHeader(h[0], h[1] == null ? null : h[1].getBytes(StandardCharsets.UTF_8)));
        }
        return new ProducerRecord<>(topic, partition, timestamp, key, value, hs);
    }

    @Override
    public List<String[]> headers(ConsumerRecord<String, String> record) {
        return pairs(record.headers());
    }

    @Override
    public List<String[]> headers(ProducerRecord<String, String> record) {
        return pairs(record.headers());
    }

    private static List<String[]> pairs(Iterable<Header> headers) {
        List<String[]> out = new ArrayList<>();
        for (Header h : headers) {
            out.add(new String[] {h.key(), h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8)});
        }
        return out;
    }
}
