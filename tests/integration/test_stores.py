"""The broker's shared stores (ACLs, client quotas, SCRAM credentials)
under concurrent changes from connections on both shards: every change a
client saw acknowledged is there after a restart (issue 12: the stores are
written off the shard threads, one writer at a time in arrival order)."""

import threading

from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
    ResourceType, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion,
)

from conftest import ConfigBroker, admin_client

THREADS = 8
EACH = 5


class StoreBroker(ConfigBroker):
    """Two shards; the anonymous PLAINTEXT client is a super user, so it may
    change ACLs, quotas and users."""

    def __init__(self, binary, base):
        self.config_path = base / "shardline.toml"
        super().__init__(binary, base / "data", base / "broker.log", name="stores")
        self.config_path.write_text(
            f'listen = "{self.bootstrap}"\n'
            "shards = 2\n"
            "authorizer_enabled = true\n"
            'super_users = ["User:ANONYMOUS"]\n'
        )


def alter_quotas(bootstrap, client_ids):
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    codes = []

    async def go():
        for c in client_ids:
            resp = await admin._manager.send(AlterClientQuotasRequest(entries=[
                ([("client-id", c)], [("producer_byte_rate", 1e6, False)]),
            ], validate_only=False))
            codes.extend(e.error_code for e in resp.entries)

    try:
        admin._manager.run(go)
    finally:
        admin.close()
    return codes


def describe_quotas(bootstrap):
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.admin.client_quotas import DescribeClientQuotasRequest
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    out = {}

    async def go():
        out["all"] = await admin._manager.send(DescribeClientQuotasRequest(components=[], strict=False))

    try:
        admin._manager.run(go)
    finally:
        admin.close()
    return {e.entity[0].entity_name for e in out["all"].entries}


def test_concurrent_acl_quota_scram_changes_from_both_shards_survive_restart(shardline_bin, tmp_path):
    b = StoreBroker(shardline_bin, tmp_path)
    try:
        b.start()
        errors = []

        def worker(t):
            try:
                # Each thread has its own connections: with 2 x THREADS of
                # them, both shards take some (SO_REUSEPORT spreads them).
                admin = admin_client(b.bootstrap)
                for i in range(EACH):
                    binding = AclBinding(ResourceType.TOPIC, f"t{t}-{i}", ResourcePatternType.LITERAL,
                                         f"User:u{t}", "*", AclOperation.READ, AclPermissionType.ALLOW)
                    for f in admin.create_acls([binding]).values():
                        f.result(timeout=30)
                    ups = UserScramCredentialUpsertion(
                        f"u{t}-{i}", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
                    for f in admin.alter_user_scram_credentials([ups]).values():
                        f.result(timeout=30)
                codes = alter_quotas(b.bootstrap, [f"c{t}-{i}" for i in range(EACH)])
                assert codes == [0] * EACH, codes
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        assert not errors, errors

        b.restart()
        admin = admin_client(b.bootstrap)
        acls = admin.describe_acls(AclBindingFilter(
            ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None,
            AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
        assert sorted(a.name for a in acls) == sorted(
            f"t{t}-{i}" for t in range(THREADS) for i in range(EACH))
        users = admin.describe_user_scram_credentials().result(timeout=30)
        assert set(users) == {f"u{t}-{i}" for t in range(THREADS) for i in range(EACH)}
        assert describe_quotas(b.bootstrap) == {
            f"c{t}-{i}" for t in range(THREADS) for i in range(EACH)}
    finally:
        b.close()
