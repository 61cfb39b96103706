package io.shardline.compat;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.ConfigResource;

/** AdminClient basics (KIP-117, 0.11 onwards): createTopics, describeConfigs. */
final class AdminImpl implements Features.Admin {
    private AdminClient admin;

    @Override
    public Object open(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("request.timeout.ms", "30000");
        admin = AdminClient.create(p);
        return admin;
    }

    @Override
    public void createTopic(String topic, int partitions, Map<String, String> configs) throws Exception {
        NewTopic t = new NewTopic(topic, partitions, (short) 1).configs(configs);
        admin.createTopics(Collections.singletonList(t)).all().get(30, TimeUnit.SECONDS);
    }

    @Override
    public Map<String, Object[]> describeTopicConfigs(String topic, List<String> names) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config c = admin.describeConfigs(Collections.singletonList(r)).all().get(30, TimeUnit.SECONDS).get(r);
        Map<String, Object[]> out = new LinkedHashMap<>();
        for (String name : names) {
            ConfigEntry e = c.get(name);
            out.put(name, e == null ? null : new Object[] {e.value(), e.isDefault()});
        }
        return out;
    }

    @Override
    public void close() {
        if (admin != null) admin.close();
    }
}
