"""Kafka over TLS (`SSL://` listeners) with kcat and confluent-kafka, certificates made by
`bramble certs`: produce and consume, client certificates required, a certificate from another
CA refused either way."""
import socket
import ssl
import struct
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from conftest import eventually, free_port, require_tool, wait_for_port
from tls_support import Pki


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def ssl_node(bramble_factory, pki, client_auth="none"):
    """A node whose only Kafka listener is `SSL://`, with a certificate for 127.0.0.1."""
    node = bramble_factory(sections=pki.tls_section(pki.node(), client_auth))
    text = node.config_text()
    node.config_text = lambda: text.replace(f'listeners = ["{node.kafka}"]', f'listeners = ["SSL://{node.kafka}"]')
    node.write_config()
    return node.start()


def kcat(*args, input=None, timeout=60):
    return subprocess.run([require_tool("kcat"), *args], input=input, capture_output=True, timeout=timeout)


def ssl_conf(node, ca, cert=None, **extra):
    conf = {"bootstrap.servers": node.kafka, "security.protocol": "SSL", "ssl.ca.location": str(ca)}
    if cert:
        conf["ssl.certificate.location"] = str(cert[0])
        conf["ssl.key.location"] = str(cert[1])
    conf.update(extra)
    return conf


def roundtrip(node, ca, cert=None, count=20):
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    producer = Producer(ssl_conf(node, ca, cert))
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer(ssl_conf(node, ca, cert, **{"group.id": "tls", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    seen = []
    try:
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is None:
                if len(seen) == count:
                    break
                continue
            assert message.error() is None, message.error()
            seen.append(message.value())
            if len(seen) == count:
                break
    finally:
        consumer.close()
    assert seen == [b"v%d" % i for i in range(count)]


def test_kcat_produces_and_consumes_over_ssl(bramble_factory, pki):
    node = ssl_node(bramble_factory, pki)
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca}"]
    lines = "".join(f"k{i}:v{i}\n" for i in range(30)).encode()
    produced = kcat("-b", node.kafka, *tls, "-P", "-t", "secure", "-K:", input=lines)
    assert produced.returncode == 0, produced.stderr
    consumed = kcat("-b", node.kafka, *tls, "-C", "-t", "secure", "-e", "-f", "%k=%s\n")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.decode().splitlines() == [f"k{i}=v{i}" for i in range(30)]


def test_kcat_refuses_a_broker_certified_by_another_ca(bramble_factory, pki, tmp_path):
    node = ssl_node(bramble_factory, pki)
    other = Pki(tmp_path / "other", "other-ca")
    result = kcat("-b", node.kafka, "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={other.ca}",
                  "-L", "-m", "5", timeout=30)
    assert result.returncode != 0
    assert b"certificate verify failed" in result.stderr or b"SSL handshake failed" in result.stderr, result.stderr


def test_plaintext_client_gets_nothing_from_an_ssl_listener(bramble_factory, pki):
    node = ssl_node(bramble_factory, pki)
    result = kcat("-b", node.kafka, "-L", "-m", "5", timeout=30)
    assert result.returncode != 0
    assert b"secure" not in result.stdout


def test_confluent_kafka_roundtrip_with_required_client_certificate(bramble_factory, pki):
    node = ssl_node(bramble_factory, pki, client_auth="required")
    roundtrip(node, pki.ca, pki.client("alice"))


def test_confluent_kafka_without_or_with_a_foreign_client_certificate_is_refused(bramble_factory, pki, tmp_path):
    node = ssl_node(bramble_factory, pki, client_auth="required")
    other = Pki(tmp_path / "other", "other-ca")
    for cert in (None, other.client("mallory")):
        admin = AdminClient(ssl_conf(node, pki.ca, cert))
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
    # The same broker still serves a client whose certificate its CA signed.
    admin = AdminClient(ssl_conf(node, pki.ca, pki.client("alice")))
    assert admin.list_topics(timeout=10).brokers


def test_requested_client_certificate_is_optional_but_checked(bramble_factory, pki, tmp_path):
    node = ssl_node(bramble_factory, pki, client_auth="requested")
    roundtrip(node, pki.ca, None, count=3)
    roundtrip(node, pki.ca, pki.client("alice"), count=3)
    # librdkafka withholds a certificate the server's CA list does not name; OpenSSL through
    # Python's ssl presents it anyway, and the broker's verifier must refuse it.
    other = Pki(tmp_path / "other", "other-ca")
    cert, key = other.client("mallory")
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(cert), str(key))
    with socket.create_connection((node.host, node.kafka_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname=node.host) as tls:
                # ApiVersions v0; under TLS 1.3 the refusal arrives as an alert on first read.
                tls.sendall(struct.pack(">ihhi", 10, 18, 0, 1) + struct.pack(">h", -1))
                if not tls.recv(4):
                    raise ConnectionError("closed without an answer")
    # The broker logs the refusal after it has sent the alert the client already saw.
    eventually("the broker logging the unknown issuer", lambda: "UnknownIssuer" in node.log_tail(200), timeout=10)


def test_ssl_listener_without_a_certificate_refuses_to_start(bramble_factory):
    node = bramble_factory()
    text = node.config_text()
    node.config_text = lambda: text.replace(f'listeners = ["{node.kafka}"]', f'listeners = ["SSL://{node.kafka}"]')
    node.write_config()
    with pytest.raises(RuntimeError):
        node.start()
    log = node.stderr_path.read_text()
    assert "cert_file and key_file" in log and "SSL://" in log, log


def test_plain_and_ssl_listeners_side_by_side_each_advertise_themselves(bramble_factory, pki):
    ssl_port = free_port()
    node = bramble_factory(sections=pki.tls_section(pki.node()))
    text = node.config_text()
    both = f'listeners = ["{node.kafka}", "SSL://127.0.0.1:{ssl_port}"]'
    node.config_text = lambda: text.replace(f'listeners = ["{node.kafka}"]', both)
    node.write_config()
    node.start()
    wait_for_port("127.0.0.1", ssl_port, process=node.process)
    plain = kcat("-b", node.kafka, "-L", timeout=30)
    assert plain.returncode == 0, plain.stderr
    assert f"at {node.kafka}" in plain.stdout.decode(), plain.stdout
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca}"]
    secure = kcat("-b", f"127.0.0.1:{ssl_port}", *tls, "-L", timeout=30)
    assert secure.returncode == 0, secure.stderr
    assert f"at 127.0.0.1:{ssl_port}" in secure.stdout.decode(), secure.stdout
    # A plaintext producer and an SSL consumer share the topic.
    assert kcat("-b", node.kafka, "-P", "-t", "mixed", input=b"a\nb\n").returncode == 0
    consumed = kcat("-b", f"127.0.0.1:{ssl_port}", *tls, "-C", "-t", "mixed", "-e")
    assert consumed.stdout.decode().split() == ["a", "b"], consumed.stderr
