"""Running out of file descriptors never leaves a half-created topic.

A broker whose open-file limit is 1,024 soft and hard (so raising the soft
limit cannot help) is asked for a 2,000-partition topic. Before issue 10 the
topic was registered, its storage failed with KAFKA_STORAGE_ERROR, and it
could not be deleted until a restart with a higher limit. Now creation is
all or nothing: either every partition opens (once idle partitions hold no
descriptors) and each accepts a produce and serves a fetch, or nothing is
left: no metadata entry, no directory, the name reusable, and the error
says descriptors ran out and how to raise the limit. Either way the broker
keeps serving other clients.

Apache Kafka 4.4.0 at the same limit (asked on 127.0.0.1 under
`prlimit --nofile=1024:1024`): CreateTopics of 2,000 partitions answers
success, the broker logs "Too many open files" for the partitions past
~1,450, produces to those get NOT_LEADER_OR_FOLLOWER, and later topics fail
the same way. KAFKA_STORAGE_ERROR (56) is Kafka's code for a log that
cannot be created, so that is the code of the clean failure here.
"""

import resource
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic, NewPartitions

from conftest import Broker, _raise_memlock, admin_client, assert_delivered, create_topic, produce, unique_topic

LIMIT = 1024
PARTITIONS = 2000
KAFKA_STORAGE_ERROR = 56


def _limited():
    _raise_memlock()
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


class LimitedBroker(Broker):
    """A broker whose process starts with RLIMIT_NOFILE = (1024, 1024)."""

    def start(self, timeout=30):
        import subprocess
        real = subprocess.Popen

        def popen(*a, **kw):
            kw["preexec_fn"] = _limited
            return real(*a, **kw)

        subprocess.Popen = popen
        try:
            return super().start(timeout)
        finally:
            subprocess.Popen = real


def partition_dirs(data_dir, topic):
    return sorted(p.name for p in Path(data_dir).glob(f"{topic}-*"))


def listed(bootstrap, topic):
    return topic in admin_client(bootstrap).list_topics(timeout=10).topics


def still_serving(bootstrap, topic, n):
    res = produce(bootstrap, topic, [{"value": f"other-{n}".encode()}], timeout=20)
    assert_delivered(res)


def create(bootstrap, topic, partitions):
    admin = admin_client(bootstrap)  # keep it alive until the answer
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)], request_timeout=120)
    try:
        fs[topic].result(timeout=180)
        return None
    except KafkaException as e:
        return e.args[0]


def every_partition_works(bootstrap, topic, partitions):
    res = produce(bootstrap, topic, [{"value": f"p{p}".encode(), "partition": p}
                                     for p in range(partitions)], timeout=120)
    assert_delivered(res)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("fd"),
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = set()
        deadline = time.monotonic() + 120
        while len(seen) < partitions and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is None:
                    seen.add(m.partition())
        assert len(seen) == partitions, f"fetched from {len(seen)} of {partitions} partitions"
    finally:
        c.close()


def test_topic_creation_at_the_descriptor_limit_is_all_or_nothing(shardline_bin, tmp_path):
    b = LimitedBroker(shardline_bin, tmp_path / "data", tmp_path / "broker.log",
                      extra_args=["--shards", "2"], name="nofile-1024")
    try:
        b.start()
        log = b.log_text()
        assert f"open-file limit (RLIMIT_NOFILE) is {LIMIT}" in log, log[-2000:]
        other = unique_topic("other")
        create_topic(b.bootstrap, other, partitions=1)
        still_serving(b.bootstrap, other, 0)

        big = unique_topic("big")
        err = create(b.bootstrap, big, PARTITIONS)
        print(f"\n{PARTITIONS} partitions at RLIMIT_NOFILE {LIMIT}: {err or 'created'}")
        still_serving(b.bootstrap, other, 1)
        if err is None:
            every_partition_works(b.bootstrap, big, PARTITIONS)
        else:
            assert err.code() == KAFKA_STORAGE_ERROR, err
            assert "file descriptors" in err.str() and "LimitNOFILE" in err.str(), err.str()
            assert not listed(b.bootstrap, big), "a failed creation left the topic in metadata"
            assert partition_dirs(b.data_dir, big) == [], "a failed creation left directories"
            # The name is free again, and such a topic is created and deleted normally.
            create_topic(b.bootstrap, big, partitions=2)
            admin = admin_client(b.bootstrap)
            fs = admin.delete_topics([big], request_timeout=30)
            fs[big].result(timeout=30)
            assert not listed(b.bootstrap, big)
            # Adding partitions is all or nothing too: the topic keeps its one.
            grow = unique_topic("grow")
            create_topic(b.bootstrap, grow, partitions=1)
            fs = admin.create_partitions([NewPartitions(grow, PARTITIONS)], request_timeout=120)
            try:
                fs[grow].result(timeout=180)
                every_partition_works(b.bootstrap, grow, PARTITIONS)
            except KafkaException as e:
                assert e.args[0].code() == KAFKA_STORAGE_ERROR, e
                md = admin_client(b.bootstrap).list_topics(topic=grow, timeout=10)
                assert len(md.topics[grow].partitions) == 1
                assert partition_dirs(b.data_dir, grow) == [f"{grow}-0"]
        still_serving(b.bootstrap, other, 2)
        # And it all survives a restart at the same limit.
        b.terminate()
        b.start()
        still_serving(b.bootstrap, other, 3)
    finally:
        b.close()
