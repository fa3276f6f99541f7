"""SASL over TLS (`SASL_SSL://` listeners), the issue's main case: confluent-kafka and kcat log
in with SCRAM and PLAIN through TLS and produce and consume; a wrong password is refused; with
client certificates required, a client whose certificate another CA signed is refused even with
the right password."""
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from conftest import free_port, require_tool
from test_security_sasl import add_user
from tls_support import Pki


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def sasl_ssl_node(bramble_factory, pki, client_auth="none"):
    """A node with a PLAINTEXT listener (administration) and a SASL_SSL one for 127.0.0.1."""
    node = bramble_factory(sections=pki.tls_section(pki.node(), client_auth))
    node.sasl_port = free_port()
    node.sasl = f"127.0.0.1:{node.sasl_port}"
    text = node.config_text()
    node.config_text = lambda: text.replace(
        f'listeners = ["{node.kafka}"]', f'listeners = ["{node.kafka}", "SASL_SSL://{node.sasl}"]')
    node.write_config()
    node.start()
    add_user(node, "alice", "alice-secret")
    return node


def conf(node, pki, mechanism, password="alice-secret", cert=None, **extra):
    c = {
        "bootstrap.servers": node.sasl,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(pki.ca),
        "sasl.mechanisms": mechanism,
        "sasl.username": "alice",
        "sasl.password": password,
    }
    if cert:
        c["ssl.certificate.location"] = str(cert[0])
        c["ssl.key.location"] = str(cert[1])
    c.update(extra)
    return c


def roundtrip(config, count=20):
    topic = f"sasl-ssl-{uuid.uuid4().hex[:8]}"
    producer = Producer({**config, "acks": "all"})
    for i in range(count):
        producer.produce(topic, value=f"value {i}")
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    deadline = time.time() + 30
    while len(values) < count and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        assert message.error() is None, message.error()
        values.append(message.value().decode())
    consumer.close()
    assert values == [f"value {i}" for i in range(count)]


def auth_errors(config):
    errors = []
    producer = Producer({**config, "error_cb": errors.append, "message.timeout.ms": 5000})
    producer.produce("refused", value=b"must not land")
    producer.flush(10)
    return errors


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_over_sasl_ssl(bramble_factory, pki, mechanism):
    node = sasl_ssl_node(bramble_factory, pki)
    roundtrip(conf(node, pki, mechanism))
    errors = auth_errors(conf(node, pki, mechanism, password="wrong"))
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_kcat_over_sasl_ssl_with_scram(bramble_factory, pki):
    kcat = require_tool("kcat")
    node = sasl_ssl_node(bramble_factory, pki)
    topic = f"kcat-sasl-ssl-{uuid.uuid4().hex[:8]}"
    auth = ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={pki.ca}",
            "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice",
            "-X", "sasl.password=alice-secret"]
    lines = "".join(f"line {i}\n" for i in range(10)).encode()
    produced = subprocess.run([kcat, "-b", node.sasl, "-P", "-t", topic, *auth], input=lines,
                              capture_output=True, timeout=60)
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")
    consumed = subprocess.run([kcat, "-b", node.sasl, "-C", "-t", topic, "-e", *auth],
                              capture_output=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr.decode(errors="replace")
    assert consumed.stdout.decode().split("\n")[:10] == [f"line {i}" for i in range(10)]
    wrong = [a.replace("alice-secret", "wrong") for a in auth]
    refused = subprocess.run([kcat, "-b", node.sasl, "-L", *wrong], capture_output=True, timeout=60)
    assert refused.returncode != 0
    assert b"Authentication failed" in refused.stderr or b"SASL" in refused.stderr, refused.stderr


def test_a_client_certificate_from_another_ca_is_refused_despite_the_right_password(
        bramble_factory, pki, tmp_path):
    node = sasl_ssl_node(bramble_factory, pki, client_auth="required")
    good = pki.client("alice")
    roundtrip(conf(node, pki, "SCRAM-SHA-512", cert=good))
    foreign = Pki(tmp_path / "foreign", name="foreign").client("alice")
    errors = auth_errors(conf(node, pki, "SCRAM-SHA-512", cert=foreign))
    assert errors, "a client with another CA's certificate was served"
    assert all(e.code() != KafkaError.NO_ERROR for e in errors)
    assert any(e.code() in (KafkaError._TRANSPORT, KafkaError._SSL, KafkaError._ALL_BROKERS_DOWN,
                            KafkaError._AUTHENTICATION) for e in errors), errors
