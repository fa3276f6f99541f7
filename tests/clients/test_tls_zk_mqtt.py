"""TLS on the ZooKeeper secure client port (kazoo `use_ssl=True`) and the MQTT TLS listener
(mosquitto_pub `--cafile`), with certificates made by `bramble certs`."""
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from conftest import free_port, wait_for_port
from mqtt_support import mosquitto_pub_lines, mqtt_sections, read_topic
from tls_support import Pki


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def secure_zk_node(bramble_factory, pki, client_auth="none"):
    """A node with a ZooKeeper TLS port beside its plain one; returns (node, secure port)."""
    port = free_port()
    node = bramble_factory(sections=pki.tls_section(pki.node(), client_auth))
    text = node.config_text()
    secure = f'listen = "{node.zk}"\nsecure_listen = "127.0.0.1:{port}"\n'
    node.config_text = lambda: text.replace(f'listen = "{node.zk}"\n', secure, 1)
    node.write_config()
    node.start()
    wait_for_port("127.0.0.1", port, process=node.process)
    return node, port


def kazoo(port, ca, cert=None, timeout=10):
    extra = {"certfile": str(cert[0]), "keyfile": str(cert[1])} if cert else {}
    client = KazooClient(hosts=f"127.0.0.1:{port}", use_ssl=True, ca=str(ca), verify_certs=True,
                         connection_retry={"max_tries": 0}, **extra)
    client.start(timeout=timeout)
    return client


def test_kazoo_over_tls_writes_what_the_plain_port_reads(bramble_factory, pki):
    node, port = secure_zk_node(bramble_factory, pki)
    client = kazoo(port, pki.ca)
    try:
        client.create("/secure/config", b"over-tls", makepath=True)
        children = client.get_children("/secure")
        assert children == ["config"]
    finally:
        client.stop()
        client.close()
    plain = KazooClient(hosts=node.zk)
    plain.start(timeout=10)
    try:
        assert plain.get("/secure/config")[0] == b"over-tls"
    finally:
        plain.stop()
        plain.close()


def test_kazoo_with_required_client_certificate(bramble_factory, pki, tmp_path):
    node, port = secure_zk_node(bramble_factory, pki, client_auth="required")
    client = kazoo(port, pki.ca, pki.client("alice"))
    try:
        client.ensure_path("/alice")
        assert client.exists("/alice") is not None
    finally:
        client.stop()
        client.close()
    other = Pki(tmp_path / "other", "other-ca")
    for cert in (None, other.client("mallory")):
        with pytest.raises(KazooTimeoutError):
            kazoo(port, pki.ca, cert, timeout=4)
    assert "UnknownIssuer" in node.log_tail(200)


def test_kazoo_refuses_a_server_certified_by_another_ca(bramble_factory, pki, tmp_path):
    node, port = secure_zk_node(bramble_factory, pki)
    other = Pki(tmp_path / "other", "other-ca")
    with pytest.raises(KazooTimeoutError):
        kazoo(port, other.ca, timeout=4)


def test_mosquitto_pub_over_tls_lands_in_the_log(bramble_factory, pki, tmp_path):
    port = free_port()
    sections = mqtt_sections(None, routes=(("sensors/#", "sensors", None),),
                             extra=f'tls_listen = "127.0.0.1:{port}"')
    node = bramble_factory(sections=sections + pki.tls_section(pki.node()))
    node.start()
    wait_for_port("127.0.0.1", port, process=node.process)
    lines = [f"reading-{i}-{uuid.uuid4().hex[:4]}" for i in range(50)]
    result = mosquitto_pub_lines(port, "sensors/kitchen", lines, extra=("--cafile", str(pki.ca)))
    assert result.returncode == 0, result.stderr
    records = read_topic(node.kafka, "sensors", len(lines))
    assert [r.value().decode() for r in records] == lines
    # Without TLS, or trusting another CA, nothing is published.
    plain = mosquitto_pub_lines(port, "sensors/kitchen", ["plain"], extra=("-W", "5"))
    assert plain.returncode != 0
    other = Pki(tmp_path / "other", "other-ca")
    wrong = mosquitto_pub_lines(port, "sensors/kitchen", ["wrong-ca"], extra=("--cafile", str(other.ca), "-W", "5"))
    assert wrong.returncode != 0
    assert len(read_topic(node.kafka, "sensors", len(lines) + 1, timeout=3)) == len(lines)
