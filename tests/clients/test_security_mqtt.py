"""MQTT logins against the shared user store (`[mqtt] require_auth = true`), driven by
mosquitto_pub (3.1.1 and 5): no credentials, a wrong password and an unknown user are
refused with the CONNACK codes MQTT defines; the right ones publish."""
import socket
import struct

from mqtt_support import mosquitto_pub_lines, read_topic, start_mqtt_bramble
from test_mqtt_listener import closed_by_server, recv_exact
from test_security_sasl import add_user


def connect_v311(client_id, user, password):
    """A CONNECT (3.1.1, clean session) with username and password."""
    def field(text):
        raw = text.encode()
        return struct.pack(">H", len(raw)) + raw
    body = (field("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 30) + field(client_id)
            + field(user) + field(password))
    return bytes([0x10, len(body)]) + body


def test_mosquitto_pub_logs_in_with_a_bramble_user(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, extra="require_auth = true")
    add_user(node, "sensor", "sensor-secret")
    for version in ("mqttv311", "mqttv5"):
        anonymous = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version)
        assert anonymous.returncode != 0
        assert "not authori" in (anonymous.stdout + anonymous.stderr).lower(), anonymous.stderr
        wrong = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version,
                                    extra=["-u", "sensor", "-P", "wrong"])
        assert wrong.returncode != 0
        assert "bad user name or password" in (wrong.stdout + wrong.stderr).lower(), wrong.stderr
        stranger = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version,
                                       extra=["-u", "mallory", "-P", "sensor-secret"])
        assert stranger.returncode != 0
        right = mosquitto_pub_lines(port, "sensors/x", [f"yes-{version}"], version=version,
                                    extra=["-u", "sensor", "-P", "sensor-secret"])
        assert right.returncode == 0, right.stderr
    values = [r.value() for r in read_topic(node.kafka, "sensors", 2)]
    assert values == [b"yes-mqttv311", b"yes-mqttv5"]


def test_publishing_needs_write_on_the_routes_topic_once_it_has_acls(bramble_factory):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)
    node, port = start_mqtt_bramble(bramble_factory, extra="require_auth = true")
    add_user(node, "sensor", "sensor-secret")
    add_user(node, "bob", "bob-secret")
    admin = AdminClient({"bootstrap.servers": node.kafka})
    grants = [("User:sensor", AclOperation.WRITE), ("User:ANONYMOUS", AclOperation.READ)]
    for future in admin.create_acls([AclBinding(
            ResourceType.TOPIC, "sensors", ResourcePatternType.LITERAL, principal, "*",
            operation, AclPermissionType.ALLOW) for principal, operation in grants]).values():
        future.result(timeout=30)
    # bob logs in, but his QoS 1 publish is not acknowledged: the connection is closed.
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(connect_v311("bob-client", "bob", "bob-secret"))
    assert recv_exact(sock, 4) == b"\x20\x02\x00\x00"
    topic, payload = b"sensors/x", b"forged"
    body = struct.pack(">H", len(topic)) + topic + struct.pack(">H", 1) + payload
    sock.sendall(bytes([0x32, len(body)]) + body)
    assert closed_by_server(sock)
    sock.close()
    for version in ("mqttv311", "mqttv5"):
        allowed = mosquitto_pub_lines(port, "sensors/x", [f"ok-{version}"], version=version,
                                      extra=["-u", "sensor", "-P", "sensor-secret"])
        assert allowed.returncode == 0, allowed.stderr
    values = [r.value() for r in read_topic(node.kafka, "sensors", 2)]
    assert values == [b"ok-mqttv311", b"ok-mqttv5"]
    # A will aimed at a topic bob may not write is refused at CONNECT.
    will = mosquitto_pub_lines(port, "elsewhere", ["x"],
                               extra=["-u", "bob", "-P", "bob-secret", "--will-topic", "sensors/bob",
                                      "--will-payload", "gone"])
    assert will.returncode != 0
    assert "not authori" in (will.stdout + will.stderr).lower(), will.stderr
