package io.shardline.compat;

import java.util.Collections;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.common.config.ConfigResource;

/** AdminClient.alterConfigs (0.11 - 3.x): replaces all of the topic's overrides with the given set. */
final class AlterImpl implements Features.Alter {
    @SuppressWarnings("deprecation")
    @Override
    public String set(Object admin, String topic, String name, String value) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config c = new Config(Collections.singletonList(new ConfigEntry(name, value)));
        ((AdminClient) admin).alterConfigs(Collections.singletonMap(r, c)).all().get(30, TimeUnit.SECONDS);
        return "alterConfigs";
    }
}
