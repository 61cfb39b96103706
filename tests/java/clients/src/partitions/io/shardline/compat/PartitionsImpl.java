package io.shardline.compat;

import java.util.Collections;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.NewPartitions;

/** createPartitions (KIP-195, 1.0 onwards). */
final class PartitionsImpl implements Features.Partitions {
    @Override
    public void increaseTo(Object admin, String topic, int total) throws Exception {
        ((AdminClient) admin).createPartitions(Collections.singletonMap(topic, NewPartitions.increaseTo(total)))
                .all().get(30, TimeUnit.SECONDS);
    }
}
