"""SASL on a Kafka listener (SASL_PLAINTEXT) with real clients: confluent-kafka and kcat
log in with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, produce and consume; a wrong password,
an unknown user and a mechanism the listener does not offer are refused and nothing is
written; users are managed with `bramble user` and with AdminClient's SCRAM API, and
their credentials are out of ZooKeeper clients' reach."""
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from conftest import BINARY, Bramble, free_port, require_tool

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class SecureBramble(Bramble):
    """A node with a PLAINTEXT listener (for administration) and a SASL_PLAINTEXT one."""

    def __init__(self, workdir, sections=""):
        self.sasl_port = free_port()
        super().__init__(workdir, sections=sections)

    @property
    def sasl(self):
        return f"127.0.0.1:{self.sasl_port}"

    def config_text(self):
        return super().config_text().replace(
            f'listeners = ["{self.kafka}"]',
            f'listeners = ["{self.kafka}", "SASL_PLAINTEXT://{self.sasl}"]')


@pytest.fixture
def secure_factory(tmp_path):
    nodes = []

    def make(sections=""):
        workdir = tmp_path / f"secure{len(nodes)}"
        workdir.mkdir()
        node = SecureBramble(workdir, sections=sections)
        nodes.append(node)
        return node.start()

    yield make
    for node in nodes:
        if node.alive():
            node.stop()


@pytest.fixture
def secure(secure_factory):
    node = secure_factory()
    add_user(node, "alice", "alice-secret")
    return node


def bramble_cli(*args, input=None):
    result = subprocess.run([str(BINARY), *args], input=input, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def add_user(node, name, password, *extra):
    bramble_cli("user", "add", name, "--password-stdin", "--bootstrap-server", node.kafka, *extra,
                input=password.encode() + b"\n")


def client_config(node, mechanism, user, password):
    return {
        "bootstrap.servers": node.sasl,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def plaintext_end_offset(node, topic):
    """The log end offset of partition 0, read through the PLAINTEXT listener."""
    consumer = Consumer({"bootstrap.servers": node.kafka, "group.id": "probe"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return high
    finally:
        consumer.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_produces_and_consumes_over_sasl(secure, mechanism):
    topic = f"sasl-{mechanism.lower()}"
    config = client_config(secure, mechanism, "alice", "alice-secret")
    producer = Producer({**config, "acks": "all"})
    for i in range(20):
        producer.produce(topic, key=f"k{i}", value=f"value {i}")
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": f"g-{mechanism}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    deadline = time.time() + 30
    while len(values) < 20 and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        assert message.error() is None, message.error()
        values.append(message.value().decode())
    consumer.close()
    assert values == [f"value {i}" for i in range(20)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_produces_and_consumes_over_sasl(secure, mechanism):
    kcat = require_tool("kcat")
    topic = f"kcat-{mechanism.lower()}"
    auth = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    lines = "".join(f"line {i}\n" for i in range(10)).encode()
    produced = subprocess.run([kcat, "-b", secure.sasl, "-P", "-t", topic, *auth], input=lines,
                              capture_output=True, timeout=60)
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")
    consumed = subprocess.run([kcat, "-b", secure.sasl, "-C", "-t", topic, "-e", *auth],
                              capture_output=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr.decode(errors="replace")
    assert consumed.stdout.decode().split("\n")[:10] == [f"line {i}" for i in range(10)]


def produce_expecting_auth_failure(config, topic):
    errors = []
    producer = Producer({**config, "error_cb": errors.append, "message.timeout.ms": 5000})
    producer.produce(topic, value=b"must not land")
    producer.flush(10)
    return errors


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_refused_and_nothing_is_produced(secure, mechanism):
    topic = f"guarded-{mechanism.lower()}"
    # The topic exists (made through the admin listener), so only the login can stop the write.
    admin = AdminClient({"bootstrap.servers": secure.kafka})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30)
    errors = produce_expecting_auth_failure(
        client_config(secure, mechanism, "alice", "wrong-password"), topic)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert any("Authentication failed" in e.str() for e in errors), errors
    errors = produce_expecting_auth_failure(
        client_config(secure, mechanism, "mallory", "alice-secret"), topic)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert plaintext_end_offset(secure, topic) == 0


def test_a_mechanism_the_listener_does_not_offer_is_refused(secure_factory):
    node = secure_factory(sections='[security]\nsasl_enabled_mechanisms = ["SCRAM-SHA-512"]\n')
    add_user(node, "alice", "alice-secret")
    errors = produce_expecting_auth_failure(
        client_config(node, "PLAIN", "alice", "alice-secret"), "plain-refused")
    assert any("Unsupported SASL mechanism" in e.str() for e in errors), errors
    assert any("SCRAM-SHA-512" in e.str() for e in errors), errors
    # On the wire: UNSUPPORTED_SASL_MECHANISM (33) with the offered list.
    with socket.create_connection(("127.0.0.1", node.sasl_port), timeout=10) as s:
        error, mechanisms = sasl_handshake(s, "SCRAM-SHA-256")
        assert (error, mechanisms) == (33, ["SCRAM-SHA-512"])
        assert s.recv(1) == b""  # then the connection is closed


# ---- raw protocol: the gate before authentication, and the failed-login back-off ----

def request(s, api_key, version, correlation_id, body):
    header = struct.pack(">hhih", api_key, version, correlation_id, 3) + b"raw"
    frame = header + body
    s.sendall(struct.pack(">i", len(frame)) + frame)


def response(s):
    head = recv_exact(s, 4)
    (length,) = struct.unpack(">i", head)
    return recv_exact(s, length)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def string(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def sasl_handshake(s, mechanism):
    request(s, 17, 1, 1, string(mechanism))
    body = response(s)
    error, count = struct.unpack(">hi", body[4:10])
    names, pos = [], 10
    for _ in range(count):
        (n,) = struct.unpack(">h", body[pos:pos + 2])
        names.append(body[pos + 2:pos + 2 + n].decode())
        pos += 2 + n
    return error, names


def plain_login(s, user, password):
    """SaslAuthenticate v0 with a PLAIN token: (error code, message)."""
    token = b"\0" + user.encode() + b"\0" + password.encode()
    request(s, 36, 0, 2, struct.pack(">i", len(token)) + token)
    body = response(s)
    (error,) = struct.unpack(">h", body[4:6])
    (n,) = struct.unpack(">h", body[6:8])
    message = body[8:8 + n].decode() if n >= 0 else None
    return error, message


def test_requests_before_authentication_close_the_connection(secure):
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=10) as s:
        # Metadata v1 for every topic.
        request(s, 3, 1, 7, struct.pack(">i", -1))
        assert s.recv(1) == b""
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=10) as s:
        # SaslAuthenticate before SaslHandshake: ILLEGAL_SASL_STATE (34), then closed.
        assert plain_login(s, "alice", "alice-secret")[0] == 34
        assert s.recv(1) == b""
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=10) as s:
        assert sasl_handshake(s, "PLAIN")[0] == 0
        assert plain_login(s, "alice", "alice-secret")[0] == 0
        # Logged in: Metadata is answered now.
        request(s, 3, 1, 8, struct.pack(">i", -1))
        (correlation_id,) = struct.unpack(">i", response(s)[:4])
        assert correlation_id == 8


def test_failed_logins_from_one_address_are_answered_ever_later(secure):
    delays = []
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=30) as s:
            assert sasl_handshake(s, "PLAIN")[0] == 0
            started = time.monotonic()
            error, message = plain_login(s, "alice", "guess")
            delays.append(time.monotonic() - started)
            assert error == 58 and "Authentication failed" in message
            assert s.recv(1) == b""
    # 100 ms, doubling per failure: 0.1, 0.2, 0.4, 0.8, 1.6 s.
    assert delays[0] >= 0.09 and delays[4] >= 1.5, delays
    assert delays[4] > 4 * delays[0], delays
    # A good login clears the count.
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=30) as s:
        assert sasl_handshake(s, "PLAIN")[0] == 0
        assert plain_login(s, "alice", "alice-secret")[0] == 0
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=30) as s:
        assert sasl_handshake(s, "PLAIN")[0] == 0
        started = time.monotonic()
        assert plain_login(s, "alice", "guess")[0] == 58
        assert time.monotonic() - started < 0.5


# ---- the user store ----

def test_admin_client_scram_api_and_bramble_user_manage_the_same_users(secure):
    admin = AdminClient({"bootstrap.servers": secure.kafka})
    upsert = UserScramCredentialUpsertion(
        "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"bob-secret")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)
    described = {name: f.result(timeout=30) for name, f in
                 admin.describe_user_scram_credentials(["alice", "bob"]).items()}
    bob = described["bob"]
    assert [(i.mechanism, i.iterations) for i in bob.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_512, 8192)]
    listing = bramble_cli("user", "list", "--bootstrap-server", secure.kafka)
    assert "alice\tSCRAM-SHA-256(iterations=4096) SCRAM-SHA-512(iterations=4096)" in listing
    assert "bob\tSCRAM-SHA-512(iterations=8192)" in listing

    producer = Producer({**client_config(secure, "SCRAM-SHA-512", "bob", "bob-secret"),
                         "acks": "all"})
    producer.produce("bobs", value=b"hi")
    assert producer.flush(30) == 0

    bramble_cli("user", "delete", "bob", "--bootstrap-server", secure.kafka)
    assert "bob" not in bramble_cli("user", "list", "--bootstrap-server", secure.kafka)
    errors = produce_expecting_auth_failure(
        client_config(secure, "SCRAM-SHA-512", "bob", "bob-secret"), "bobs")
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_cli_logs_in_through_a_sasl_listener(secure):
    result = subprocess.run(
        [str(BINARY), "user", "add", "carol", "--password", "carol-secret",
         "--bootstrap-server", secure.sasl, "--login-user", "alice"],
        capture_output=True, timeout=60, env={"BRAMBLE_LOGIN_PASSWORD": "alice-secret"})
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    result = subprocess.run(
        [str(BINARY), "user", "list", "--bootstrap-server", secure.sasl, "--login-user", "alice"],
        capture_output=True, timeout=60, env={"BRAMBLE_LOGIN_PASSWORD": "wrong"})
    assert result.returncode != 0
    assert b"refused" in result.stderr


def test_credentials_are_hidden_from_zookeeper_clients(secure):
    zk = KazooClient(hosts=secure.zk, timeout=10)
    zk.start(timeout=15)
    try:
        with pytest.raises(NoAuthError):
            zk.get("/config/users/alice")
        with pytest.raises(NoAuthError):
            zk.get_children("/config/users")
        with pytest.raises(NoAuthError):
            zk.set("/config/users/alice", b'{"version":2,"config":{}}')
        with pytest.raises(NoAuthError):
            zk.delete("/config/users/alice")
        with pytest.raises(NoAuthError):
            zk.create("/config/users/mallory", b"{}")
    finally:
        zk.stop()
        zk.close()
    # alice still logs in.
    producer = Producer({**client_config(secure, "SCRAM-SHA-256", "alice", "alice-secret"),
                         "acks": "all"})
    producer.produce("after-zk", value=b"ok")
    assert producer.flush(30) == 0


# ---- limits ----

def api_versions_answered(s):
    request(s, 18, 0, 9, b"")
    try:
        (correlation_id,) = struct.unpack(">i", response(s)[:4])
    except (ConnectionError, OSError):
        return False
    return correlation_id == 9


def answered_connection(host, port, timeout=10.0):
    """A connection the node serves, retried while an earlier one of ours (the fixture's
    readiness probe, one just closed) still holds its slot: the node frees a slot when it sees
    the close, which on a loaded machine can take a moment."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.create_connection((host, port), timeout=10)
        if api_versions_answered(s):
            return s
        s.close()
        assert time.monotonic() < deadline, "no slot came free"
        time.sleep(0.1)


def test_connections_per_address_are_capped(bramble_factory):
    node = bramble_factory(extra_config="max_connections_per_ip = 3").start()
    host, port = node.kafka.split(":")
    held = []
    try:
        held = [answered_connection(host, int(port)) for _ in range(3)]
        # Three served connections from this address: a fourth is closed unanswered.
        with socket.create_connection((host, int(port)), timeout=10) as extra:
            assert not api_versions_answered(extra)
        held.pop().close()
        answered_connection(host, int(port)).close()
    finally:
        for s in held:
            s.close()


def test_handshake_v0_is_followed_by_raw_tokens(secure):
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=10) as s:
        request(s, 17, 0, 1, string("PLAIN"))
        body = response(s)
        assert struct.unpack(">h", body[4:6])[0] == 0
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert recv_exact(s, 4) == b"\0\0\0\0"  # PLAIN's empty answer: logged in
        request(s, 3, 1, 5, struct.pack(">i", -1))
        assert struct.unpack(">i", response(s)[:4])[0] == 5
    with socket.create_connection(("127.0.0.1", secure.sasl_port), timeout=10) as s:
        request(s, 17, 0, 1, string("PLAIN"))
        response(s)
        token = b"\0alice\0wrong"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert s.recv(1) == b""  # a failed raw login just closes
