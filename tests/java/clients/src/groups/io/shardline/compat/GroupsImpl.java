package io.shardline.compat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/** Consumer groups in AdminClient (KIP-222) and deleteRecords (KIP-204), both 2.0 onwards. */
final class GroupsImpl implements Features.Groups {
    @SuppressWarnings("deprecation") // listConsumerGroups: deprecated for listGroups in 4.1, still served
    @Override
    public List<String> listConsumerGroups(Object admin) throws Exception {
        List<String> out = new ArrayList<>();
        for (ConsumerGroupListing g : ((AdminClient) admin).listConsumerGroups().all().get(30, TimeUnit.SECONDS)) {
            out.add(g.groupId());
        }
        Collections.sort(out);
        return out;
    }

    @SuppressWarnings("deprecation")
    @Override
    public Map<String, Object> describeConsumerGroup(Object admin, String group) throws Exception {
        ConsumerGroupDescription d = ((AdminClient) admin).describeConsumerGroups(Collections.singletonList(group))
                .all().get(30, TimeUnit.SECONDS).get(group);
        return Json.obj("group", d.groupId(), "state", String.valueOf(d.state()),
                "members", d.members().size(), "assignor", d.partitionAssignor());
    }

    @Override
    public Map<String, Long> groupOffsets(Object admin, String group) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = ((AdminClient) admin).listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        Map<String, Long> out = new TreeMap<>();
        offsets.forEach((tp, om) -> out.put(tp.topic() + "/" + tp.partition(), om.offset()));
        return out;
    }

    @Override
    public long deleteRecordsBefore(Object admin, TopicPartition tp, long offset) throws Exception {
        return ((AdminClient) admin).deleteRecords(Collections.singletonMap(tp, RecordsToDelete.beforeOffset(offset)))
                .lowWatermarks().get(tp).get(30, TimeUnit.SECONDS).lowWatermark();
    }
}
