"""Kafka ACLs with real clients: confluent-kafka's AdminClient creates, describes and
deletes ACLs; a topic ACL lets alice produce and consume while bob is refused with
TOPIC_AUTHORIZATION_FAILED; group ACLs and super users behave as in Kafka."""
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

from conftest import BINARY
from test_security_sasl import add_user, client_config, secure, secure_factory  # noqa: F401 (fixtures)


def acl(name, principal, operation, permission=AclPermissionType.ALLOW,
        resource=ResourceType.TOPIC, pattern=ResourcePatternType.LITERAL):
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def done(futures):
    return [f.result(timeout=30) for f in (futures.values() if isinstance(futures, dict) else futures)]


def produce(node, user, password, topic, value):
    """Deliver one record; the delivery error (None when it landed)."""
    outcome = []
    producer = Producer({**client_config(node, "SCRAM-SHA-256", user, password),
                         "acks": "all", "message.timeout.ms": 10000})
    producer.produce(topic, value=value, on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(20)
    assert outcome, "no delivery report"
    return outcome[0]


def consume_all(node, user, password, topic, group):
    consumer = Consumer({**client_config(node, "SCRAM-SHA-256", user, password),
                         "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, errors = [], []
    deadline = time.time() + 15
    while time.time() < deadline and not values and not errors:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            errors.append(message.error())
        else:
            values.append(message.value())
    consumer.close()
    return values, errors


@pytest.fixture
def users(secure):
    add_user(secure, "bob", "bob-secret")
    return secure


def test_topic_acl_allows_alice_and_refuses_bob(users):
    node = users
    admin = AdminClient({"bootstrap.servers": node.kafka})
    done(admin.create_topics([NewTopic("payroll", num_partitions=1, replication_factor=1)]))
    done(admin.create_acls([
        acl("payroll", "User:alice", AclOperation.WRITE),
        acl("payroll", "User:alice", AclOperation.READ),
        acl("payroll", "User:bob", AclOperation.WRITE, AclPermissionType.DENY),
        acl("payroll-", "User:alice", AclOperation.READ, resource=ResourceType.GROUP,
            pattern=ResourcePatternType.PREFIXED),
    ]))
    described = admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, "payroll", ResourcePatternType.LITERAL, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert sorted((b.principal, b.operation, b.permission_type) for b in described) == sorted([
        ("User:alice", AclOperation.WRITE, AclPermissionType.ALLOW),
        ("User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        ("User:bob", AclOperation.WRITE, AclPermissionType.DENY),
    ])

    assert produce(node, "alice", "alice-secret", "payroll", b"salary") is None
    error = produce(node, "bob", "bob-secret", "payroll", b"forged")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error

    values, errors = consume_all(node, "alice", "alice-secret", "payroll", "payroll-readers")
    assert values == [b"salary"], errors
    values, errors = consume_all(node, "bob", "bob-secret", "payroll", "payroll-bob")
    assert values == []
    assert any(e.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                            KafkaError.GROUP_AUTHORIZATION_FAILED) for e in errors), errors

    # Topics without ACLs stay open to authenticated users (allow_everyone_if_no_acl_found).
    assert produce(node, "bob", "bob-secret", "open-topic", b"hello") is None

    # Bob is not told payroll exists in a full listing.
    bob_admin = AdminClient(client_config(node, "SCRAM-SHA-256", "bob", "bob-secret"))
    bob_topics = bob_admin.list_topics(timeout=10).topics
    assert "open-topic" in bob_topics and "payroll" not in bob_topics

    # Bob may not grow or delete the topic either.
    from confluent_kafka.admin import NewPartitions
    bob_admin_ops = AdminClient(client_config(node, "SCRAM-SHA-256", "bob", "bob-secret"))
    with pytest.raises(KafkaException) as grow:
        done(bob_admin_ops.create_partitions([NewPartitions("payroll", 3)]))
    assert grow.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as delete:
        done(bob_admin_ops.delete_topics(["payroll"]))
    assert delete.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Deleting the deny leaves bob without an allow on a topic that has ACLs: still refused.
    deleted = done(admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, "payroll", ResourcePatternType.LITERAL, "User:bob", None,
        AclOperation.ANY, AclPermissionType.ANY)]))
    assert len(deleted[0]) == 1
    error = produce(node, "bob", "bob-secret", "payroll", b"forged")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_without_the_no_acl_default_only_grants_and_super_users_pass(secure_factory):
    node = secure_factory(sections=(
        '[security]\nsuper_users = ["User:admin"]\nallow_everyone_if_no_acl_found = false\n'))
    # The first user may be added from the node itself; later ones need a super user.
    add_user(node, "admin", "admin-secret")
    with pytest.raises(AssertionError, match="error 31"):
        add_user(node, "alice", "alice-secret")
    added = subprocess.run(
        [str(BINARY), "user", "add", "alice", "--password-stdin", "--bootstrap-server", node.sasl,
         "--login-user", "admin"], input=b"alice-secret\n", capture_output=True, timeout=60,
        env={"BRAMBLE_LOGIN_PASSWORD": "admin-secret"})
    assert added.returncode == 0, added.stderr.decode(errors="replace")
    # The anonymous PLAINTEXT client is no longer allowed to manage ACLs.
    anonymous = AdminClient({"bootstrap.servers": node.kafka})
    with pytest.raises(KafkaException) as refused:
        done(anonymous.create_acls([acl("t", "User:alice", AclOperation.WRITE)]))
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # Alice has no grant anywhere.
    error = produce(node, "alice", "alice-secret", "t", b"x")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    # The super user grants her Write (and creates the topic by producing).
    superuser = AdminClient(client_config(node, "SCRAM-SHA-256", "admin", "admin-secret"))
    done(superuser.create_acls([acl("t", "User:alice", AclOperation.ALL)]))
    assert produce(node, "admin", "admin-secret", "t", b"first") is None
    assert produce(node, "alice", "alice-secret", "t", b"second") is None
