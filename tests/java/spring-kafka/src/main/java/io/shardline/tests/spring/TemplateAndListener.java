package io.shardline.tests.spring;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.TopicBuilder;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaAdmin;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.support.SendResult;

/**
 * Spring for Apache Kafka end to end: at startup Spring's KafkaAdmin brings
 * the NewTopic beans about (TOPIC, which exists with fewer partitions and
 * another retention.ms: CreatePartitions and IncrementalAlterConfigs;
 * TOPIC-compacted, which does not exist: CreateTopics); then a KafkaTemplate
 * sends N keyed records with headers to TOPIC and a @KafkaListener (a
 * consumer group, two concurrent consumers) receives them.
 *
 * Usage: TemplateAndListener BOOTSTRAP TOPIC GROUP N TIMEOUT_S [GROUP_PROTOCOL]
 *
 * Prints one JSON line per record sent ("event":"sent": key, partition,
 * offset, timestamp) and per record received ("event":"received": key,
 * value, headers, partition, offset, timestamp), then "done" after the Spring
 * context (and so the listener containers, which commit on stop) is closed.
 * Exits 1 when not all N records arrived within TIMEOUT_S.
 */
public final class TemplateAndListener {

    static String bootstrap;
    static String topicName;
    static String groupProtocol;
    static CountDownLatch remaining;

    @Configuration
    @EnableKafka
    static class KafkaConfig {

        @Bean
        KafkaAdmin kafkaAdmin() {
            KafkaAdmin admin = new KafkaAdmin(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap));
            // Fail the context (and the test) when the topics cannot be made as declared.
            admin.setFatalIfBrokerNotAvailable(true);
            admin.setModifyTopicConfigs(true);
            return admin;
        }

        @Bean
        NewTopic listenedTopic() {
            return TopicBuilder.name(topicName).partitions(3).replicas(1)
                    .config(TopicConfig.RETENTION_MS_CONFIG, "3600000").build();
        }

        @Bean
        NewTopic compactedTopic() {
            return TopicBuilder.name(topicName + "-compacted").partitions(2).replicas(1).compact().build();
        }

        @Bean
        DefaultKafkaProducerFactory<String, String> producerFactory() {
            Map<String, Object> p = new HashMap<>();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
            return new DefaultKafkaProducerFactory<>(p, new StringSerializer(), new StringSerializer());
        }

        @Bean
        KafkaTemplate<String, String> kafkaTemplate(DefaultKafkaProducerFactory<String, String> pf) {
            return new KafkaTemplate<>(pf);
        }

        @Bean
        ConcurrentKafkaListenerContainerFactory<String, String> kafkaListenerContainerFactory() {
            Map<String, Object> c = new HashMap<>();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, groupProtocol);
            ConcurrentKafkaListenerContainerFactory<String, String> f = new ConcurrentKafkaListenerContainerFactory<>();
            f.setConsumerFactory(
                    new DefaultKafkaConsumerFactory<>(c, new StringDeserializer(), new StringDeserializer()));
            // Two consumers in the group: the listener's partitions are split by a rebalance.
            f.setConcurrency(2);
            return f;
        }

        @Bean
        Listener listener() {
            return new Listener();
        }
    }

    static class Listener {
        // Topic and group come from system properties set by main().
        @KafkaListener(topics = "${test.topic}", groupId = "${test.group}")
        void onRecord(ConsumerRecord<String, String> r) {
            StringBuilder headers = new StringBuilder();
            for (Header h : r.headers()) {
                headers.append(headers.length() == 0 ? "" : ",").append('[').append(str(h.key())).append(',')
                        .append(h.value() == null ? "null" : str(new String(h.value(), StandardCharsets.UTF_8)))
                        .append(']');
            }
            print("{\"event\":\"received\",\"key\":" + str(r.key()) + ",\"value\":" + str(r.value())
                    + ",\"headers\":[" + headers + "],\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
                    + ",\"timestamp\":" + r.timestamp() + ",\"thread\":" + str(Thread.currentThread().getName()) + "}");
            remaining.countDown();
        }
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        String topic = args[1];
        topicName = topic;
        String group = args[2];
        int n = Integer.parseInt(args[3]);
        long timeoutS = Long.parseLong(args[4]);
        groupProtocol = args.length > 5 ? args[5] : "classic";
        System.setProperty("test.topic", topic);
        System.setProperty("test.group", group);
        remaining = new CountDownLatch(n);

        boolean ok;
        try (AnnotationConfigApplicationContext ctx = new AnnotationConfigApplicationContext(KafkaConfig.class)) {
            @SuppressWarnings("unchecked")
            KafkaTemplate<String, String> template = ctx.getBean(KafkaTemplate.class);
            List<CompletableFuture<SendResult<String, String>>> sends = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                ProducerRecord<String, String> record = new ProducerRecord<>(topic, "key-" + (i % 7), "value-" + i);
                record.headers().add(new RecordHeader("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8)));
                record.headers().add(new RecordHeader("source", "spring-kafka".getBytes(StandardCharsets.UTF_8)));
                sends.add(template.send(record));
            }
            for (CompletableFuture<SendResult<String, String>> f : sends) {
                SendResult<String, String> sent = f.get(timeoutS, TimeUnit.SECONDS);
                print("{\"event\":\"sent\",\"key\":" + str(sent.getProducerRecord().key())
                        + ",\"partition\":" + sent.getRecordMetadata().partition()
                        + ",\"offset\":" + sent.getRecordMetadata().offset()
                        + ",\"timestamp\":" + sent.getRecordMetadata().timestamp() + "}");
            }
            ok = remaining.await(timeoutS, TimeUnit.SECONDS);
        }
        print("{\"event\":\"done\",\"all_received\":" + ok + ",\"missing\":" + remaining.getCount() + "}");
        System.exit(ok ? 0 : 1);
    }

    static synchronized void print(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String str(String s) {
        if (s == null) {
            return "null";
        }
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
