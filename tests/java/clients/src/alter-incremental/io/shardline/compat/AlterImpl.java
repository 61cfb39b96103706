package io.shardline.compat;

import java.util.Collection;
import java.util.Collections;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.common.config.ConfigResource;

/** incrementalAlterConfigs (KIP-339, 2.3 onwards): SET one config, leave the others. */
final class AlterImpl implements Features.Alter {
    @Override
    public String set(Object admin, String topic, String name, String value) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Collection<AlterConfigOp> ops = Collections.singletonList(
                new AlterConfigOp(new ConfigEntry(name, value), AlterConfigOp.OpType.SET));
        ((AdminClient) admin).incrementalAlterConfigs(Collections.singletonMap(r, ops)).all().get(30, TimeUnit.SECONDS);
        return "incrementalAlterConfigs";
    }
}
