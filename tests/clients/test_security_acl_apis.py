"""Kafka ACLs on the config, group and offset APIs, with real clients (confluent-kafka's
AdminClient, and kafka-python's client for the requests AdminClients do not expose):
DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, OffsetForLeaderEpoch,
FindCoordinator, ListGroups, DescribeGroups, DeleteGroups, OffsetCommit and OffsetDelete
answer each refused topic, group or broker with Kafka's authorization error and serve the
rest, as Kafka's authorizer does."""
import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AclOperation, AclPermissionType, AdminClient,
                                   AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourcePatternType,
                                   ResourceType)
from kafka.client_async import KafkaClient
from kafka.protocol.admin import AlterConfigsRequest_v0, DescribeGroupsRequest_v0
from kafka.protocol.api import Request, Response
from kafka.protocol.offset_for_leader_epoch import OffsetForLeaderEpochRequest_v3
from kafka.protocol.types import Array, Int16, Int32, Schema, String

from test_security_acl import acl, done
from test_security_sasl import add_user, client_config, secure_factory  # noqa: F401 (fixture)

TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31


class OffsetDeleteResponse_v0(Response):
    API_KEY = 47
    API_VERSION = 0
    SCHEMA = Schema(
        ('error_code', Int16),
        ('throttle_time_ms', Int32),
        ('topics', Array(
            ('name', String('utf-8')),
            ('partitions', Array(('partition_index', Int32), ('error_code', Int16))))))


class OffsetDeleteRequest_v0(Request):
    """OffsetDelete (KIP-496), which kafka-python has no class for: its schema, sent by
    kafka-python's client."""
    API_KEY = 47
    API_VERSION = 0
    RESPONSE_TYPE = OffsetDeleteResponse_v0
    SCHEMA = Schema(
        ('group_id', String('utf-8')),
        ('topics', Array(('name', String('utf-8')), ('partitions', Array(Int32)))))


class Wire:
    """kafka-python's client logged in over SASL, sending single requests to node 1."""

    def __init__(self, node, user, password):
        self.client = KafkaClient(
            bootstrap_servers=node.sasl, security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=user,
            sasl_plain_password=password, api_version=(2, 5))
        deadline = time.monotonic() + 20
        while not self.client.ready(1):
            self.client.poll(timeout_ms=100)
            assert time.monotonic() < deadline, "no connection to node 1"

    def ask(self, request):
        future = self.client.send(1, request)
        self.client.poll(future=future, timeout_ms=10_000)
        assert future.succeeded(), future.exception
        return future.value

    def close(self):
        self.client.close()


def sasl_admin(node, user):
    return AdminClient(client_config(node, "SCRAM-SHA-256", user, f"{user}-secret"))


def error_code(exception):
    return exception.args[0].code()


@pytest.fixture
def node(secure_factory):
    node = secure_factory(sections='[security]\nsuper_users = ["User:admin"]\n')
    for user in ("admin", "alice", "bob"):
        add_user(node, user, f"{user}-secret")
    admin = sasl_admin(node, "admin")
    done(admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                              for t in ("ledger", "notes")]))
    # Groups "team" and "secret" exist once offsets are committed for them.
    for group in ("team", "secret"):
        done(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
            group, [TopicPartition("notes", 0, 0)])]))
    done(admin.create_acls([
        acl("ledger", "User:alice", AclOperation.ALL),
        acl("notes", "User:*", AclOperation.READ),
        acl("team", "User:bob", AclOperation.READ, resource=ResourceType.GROUP),
        acl("team", "User:alice", AclOperation.ALL, resource=ResourceType.GROUP),
        acl("secret", "User:alice", AclOperation.ALL, resource=ResourceType.GROUP),
        # The cluster now has an ACL: only what it grants (and super users) pass there.
        acl("kafka-cluster", "User:alice", AclOperation.DESCRIBE_CONFIGS,
            resource=ResourceType.BROKER),
    ]))
    return node


def test_configs_need_describe_and_alter_configs_on_the_topic_or_the_cluster(node):
    alice, bob = sasl_admin(node, "alice"), sasl_admin(node, "bob")
    ledger = ConfigResource(ResourceType.TOPIC, "ledger")
    broker = ConfigResource(ResourceType.BROKER, "1")

    # DescribeConfigs: per resource, so bob's broker answer is refused apart from his topic's.
    described = alice.describe_configs([ledger, broker])
    assert "retention.ms" in described[ledger].result(timeout=30)
    assert "log.retention.hours" in described[broker].result(timeout=30)
    described = bob.describe_configs([ledger, ConfigResource(ResourceType.TOPIC, "notes"), broker])
    with pytest.raises(KafkaException) as refused:
        described[ledger].result(timeout=30)
    assert error_code(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as refused:
        described[broker].result(timeout=30)
    assert error_code(refused.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # Read on notes does not imply DescribeConfigs.
    with pytest.raises(KafkaException) as refused:
        described[ConfigResource(ResourceType.TOPIC, "notes")].result(timeout=30)
    assert error_code(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # IncrementalAlterConfigs: bob is refused and nothing changes; alice changes it.
    change = ConfigResource(ResourceType.TOPIC, "ledger", incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        done(bob.incremental_alter_configs([change]))
    assert error_code(refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert alice.describe_configs([ledger])[ledger].result(timeout=30)["retention.ms"].value != "3600000"
    done(alice.incremental_alter_configs([change]))
    assert alice.describe_configs([ledger])[ledger].result(timeout=30)["retention.ms"].value == "3600000"

    # AlterConfigs (the legacy API, through kafka-python): the same, per resource.
    wire = Wire(node, "bob", "bob-secret")
    try:
        answer = wire.ask(AlterConfigsRequest_v0(
            resources=[(2, "ledger", [("retention.ms", "60000")]), (4, "1", [])],
            validate_only=False))
        codes = {name: code for code, _, _, name in answer.resources}
        assert codes == {"ledger": TOPIC_AUTHORIZATION_FAILED, "1": CLUSTER_AUTHORIZATION_FAILED}
    finally:
        wire.close()
    assert alice.describe_configs([ledger])[ledger].result(timeout=30)["retention.ms"].value == "3600000"


def test_offset_for_leader_epoch_needs_describe_and_replicas_the_cluster(node):
    wire = Wire(node, "bob", "bob-secret")
    try:
        answer = wire.ask(OffsetForLeaderEpochRequest_v3(
            replica_id=-1, topics=[("ledger", [(0, -1, 0)]), ("notes", [(0, -1, 0)])]))
        codes = {topic: parts[0][0] for topic, parts in answer.topics}
        assert codes == {"ledger": TOPIC_AUTHORIZATION_FAILED, "notes": 0}
        # A client claiming to be a replica needs ClusterAction.
        answer = wire.ask(OffsetForLeaderEpochRequest_v3(replica_id=2, topics=[("notes", [(0, -1, 0)])]))
        assert [parts[0][0] for _, parts in answer.topics] == [CLUSTER_AUTHORIZATION_FAILED]
    finally:
        wire.close()


def test_group_apis_answer_each_refused_group(node):
    admin, alice, bob = sasl_admin(node, "admin"), sasl_admin(node, "alice"), sasl_admin(node, "bob")

    # ListGroups: bob has no Describe on the cluster, so he sees only the groups he may describe.
    listed = {g.group_id for g in bob.list_consumer_groups().result(timeout=30).valid}
    assert listed == {"team"}
    listed = {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert {"team", "secret"} <= listed

    # FindCoordinator (confluent-kafka asks it before DescribeGroups).
    described = bob.describe_consumer_groups(["team", "secret"])
    assert described["team"].result(timeout=30).group_id == "team"
    with pytest.raises(KafkaException) as refused:
        described["secret"].result(timeout=30)
    assert error_code(refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED

    # DescribeGroups straight to the coordinator, past FindCoordinator.
    wire = Wire(node, "bob", "bob-secret")
    try:
        answer = wire.ask(DescribeGroupsRequest_v0(groups=["team", "secret"]))
        codes = {group[1]: group[0] for group in answer.groups}
        assert codes == {"team": 0, "secret": GROUP_AUTHORIZATION_FAILED}
    finally:
        wire.close()

    # DeleteGroups needs Delete on each group: bob's Read is not enough.
    deleted = bob.delete_consumer_groups(["team"])
    with pytest.raises(KafkaException) as refused:
        deleted["team"].result(timeout=30)
    assert error_code(refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert "team" in {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    done(alice.delete_consumer_groups(["team"]))
    assert "team" not in {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}


def committed(admin, group, topics):
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, 0) for t in topics])])[group].result(timeout=30)
    return {tp.topic: tp.offset for tp in answer.topic_partitions}


def test_offset_commit_commits_the_allowed_topics_and_refuses_the_rest(node):
    admin, bob = sasl_admin(node, "admin"), sasl_admin(node, "bob")
    answer = bob.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "team", [TopicPartition("notes", 0, 7), TopicPartition("ledger", 0, 5)])])
    partitions = answer["team"].result(timeout=30).topic_partitions
    errors = {tp.topic: tp.error and tp.error.code() for tp in partitions}
    assert errors == {"notes": None, "ledger": KafkaError.TOPIC_AUTHORIZATION_FAILED}, errors
    # notes was committed; ledger was not.
    assert committed(admin, "team", ["notes", "ledger"]) == {"notes": 7, "ledger": -1001}
    # A group bob may not read refuses every partition.
    answer = bob.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "secret", [TopicPartition("notes", 0, 9)])])
    with pytest.raises(KafkaException) as refused:
        answer["secret"].result(timeout=30)
    assert error_code(refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert committed(admin, "secret", ["notes"]) == {"notes": 0}


def test_offset_delete_needs_delete_on_the_group_and_read_on_each_topic(node):
    admin = sasl_admin(node, "admin")
    done(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "team", [TopicPartition("notes", 0, 3), TopicPartition("ledger", 0, 4)])]))
    done(admin.create_acls([acl("notes", "User:alice", AclOperation.READ,
                                permission=AclPermissionType.DENY)]))
    wire = Wire(node, "bob", "bob-secret")
    try:
        answer = wire.ask(OffsetDeleteRequest_v0(group_id="team", topics=[("notes", [0])]))
        assert answer.error_code == GROUP_AUTHORIZATION_FAILED
    finally:
        wire.close()
    wire = Wire(node, "alice", "alice-secret")
    try:
        answer = wire.ask(OffsetDeleteRequest_v0(
            group_id="team", topics=[("notes", [0]), ("ledger", [0])]))
        assert answer.error_code == 0
        codes = {name: parts[0][1] for name, parts in answer.topics}
        assert codes == {"notes": TOPIC_AUTHORIZATION_FAILED, "ledger": 0}
    finally:
        wire.close()
    assert committed(admin, "team", ["notes", "ledger"]) == {"notes": 3, "ledger": -1001}


def test_offset_fetch_answers_refused_topics_and_groups(node):
    admin, bob = sasl_admin(node, "admin"), sasl_admin(node, "bob")
    done(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "team", [TopicPartition("notes", 0, 2), TopicPartition("ledger", 0, 6)])]))
    answer = bob.list_consumer_group_offsets([ConsumerGroupTopicPartitions(
        "team", [TopicPartition("notes", 0), TopicPartition("ledger", 0)])])["team"].result(timeout=30)
    seen = {tp.topic: (tp.offset, tp.error and tp.error.code()) for tp in answer.topic_partitions}
    assert seen == {"notes": (2, None), "ledger": (-1001, KafkaError.TOPIC_AUTHORIZATION_FAILED)}, seen
    with pytest.raises(KafkaException) as refused:
        bob.list_consumer_group_offsets([ConsumerGroupTopicPartitions(
            "secret", [TopicPartition("notes", 0)])])["secret"].result(timeout=30)
    assert error_code(refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
