"""TLS on the ZooKeeper secure client port (kazoo `use_ssl=True`), the MQTT TLS listener
(mosquitto_pub `--cafile`) and admin HTTPS, with certificates made by `bramble certs`; and the
startup warning about listeners open to the network without TLS or authentication."""
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from conftest import BINARY, free_port, wait_for_port
from mqtt_support import mosquitto_pub_lines, mqtt_sections, read_topic, wait_for_log_line
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


def test_admin_serves_https_with_the_node_certificate(bramble_factory, pki):
    node = bramble_factory(admin_config="tls = true", sections=pki.tls_section(pki.node()))
    node.start()
    wait_for_port(node.host, node.admin_port, process=node.process)
    context = ssl.create_default_context(cafile=str(pki.ca))
    try:
        with urllib.request.urlopen(f"https://{node.admin}/health", context=context, timeout=10) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as error:  # 503 while degraded still answers JSON
        code, body = error.code, error.read()
    assert code in (200, 503)
    assert json.loads(body)["node"] == 1
    # Plain HTTP on the HTTPS port gets no answer.
    with socket.create_connection((node.host, node.admin_port), timeout=5) as raw:
        raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = raw.recv(64)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/")


def test_a_listener_open_to_the_network_without_tls_logs_one_loud_warning(bramble_factory):
    port = free_port("0.0.0.0")
    node = bramble_factory(admin_config="")
    text = node.config_text()
    node.config_text = lambda: text.replace(f'listen = "{node.admin}"', f'listen = "0.0.0.0:{port}"')
    node.write_config()
    node.start()
    wait_for_port("127.0.0.1", port, process=node.process)
    wait_for_log_line(node, "bramble serving")
    log = node.stderr_path.read_text()
    warnings = [line for line in log.splitlines() if "INSECURE" in line]
    assert len(warnings) == 1, log
    assert f"0.0.0.0:{port}" in warnings[0] and "bramble certs" in warnings[0]
    # Loopback-only listeners (the test default) give no warning.
    quiet = bramble_factory().start()
    wait_for_log_line(quiet, "bramble serving")
    assert "INSECURE" not in quiet.stderr_path.read_text()


def test_bramble_status_reads_an_https_admin_listener(bramble_factory, pki, tmp_path):
    node = bramble_factory(admin_config="tls = true",
                           sections=pki.tls_section(pki.node(), client_auth="required"))
    node.start()
    wait_for_port(node.host, node.admin_port, process=node.process)
    cert, key = pki.client("operator")

    def status(*args):
        return subprocess.run([str(BINARY), "status", "--json", "--admin", f"https://{node.admin}",
                               "--bootstrap-server", node.kafka, *args],
                              capture_output=True, text=True, timeout=60)

    answered = status("--cacert", str(pki.ca), "--cert", str(cert), "--key", str(key))
    assert answered.returncode == 0, answered.stderr
    report = json.loads(answered.stdout)
    assert report["nodes"][0]["health"]["node"] == 1, report
    # Without a client certificate the listener refuses the handshake; without the CA the
    # CLI says what is missing; a CA that did not sign the node's certificate is refused.
    refused = status("--cacert", str(pki.ca))
    assert refused.returncode != 0 and "no node answered" in refused.stderr
    # (TLS 1.3: the server's alert may only arrive with the first read.)
    error = json.loads(refused.stdout)["nodes"][0]["error"]
    assert "TLS handshake" in error or "CertificateRequired" in error, error
    missing = status()
    assert "--cacert" in json.loads(missing.stdout)["nodes"][0]["error"]
    other = Pki(tmp_path, name="other-ca")
    foreign = status("--cacert", str(other.ca), "--cert", str(cert), "--key", str(key))
    assert foreign.returncode != 0
    assert "TLS handshake" in json.loads(foreign.stdout)["nodes"][0]["error"]
