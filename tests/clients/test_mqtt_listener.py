"""MQTT ingest through the built-in listener, driven by mosquitto_pub, paho-mqtt and raw
sockets; what landed is read back with confluent-kafka."""
import collections
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import free_port, require_tool, wait_for_port
from mqtt_support import mosquitto_pub_lines, mqtt_sections, read_topic, start_mqtt_bramble, wait_for_log_line


# --- raw MQTT 3.1.1 packets, for input no well-behaved client sends ----------------------

def remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def connect_packet(client_id, level=4, clean=True, will=None, keep_alive=60):
    flags = 0x02 if clean else 0
    payload = mqtt_string(client_id)
    if will is not None:
        topic, message = will
        flags |= 0x04 | (1 << 3)  # will, QoS 1
        payload += mqtt_string(topic) + mqtt_string(message)
    body = mqtt_string("MQTT") + bytes([level, flags]) + struct.pack(">H", keep_alive) + payload
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(topic, payload, qos=1, packet_id=1, dup=False):
    body = mqtt_string(topic) + (struct.pack(">H", packet_id) if qos else b"") + payload
    first = 0x30 | (qos << 1) | (0x08 if dup else 0)
    return bytes([first]) + remaining_length(len(body)) + body


def raw_client(port, client_id, level=4, will=None):
    """A socket past CONNECT/CONNACK."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(connect_packet(client_id, level=level, will=will))
    assert recv_exact(sock, 4) == b"\x20\x02\x00\x00", "CONNACK accepted"
    return sock


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(sock, timeout=10.0):
    """True when the server closes the socket (whatever it sent first)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# --- paho helpers --------------------------------------------------------------------------

def paho_client(port, client_id, protocol=mqtt.MQTTv311, clean_session=True):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                         clean_session=clean_session if protocol != mqtt.MQTTv5 else None)
    connected = threading.Event()
    client.user_data_set({"connected": connected, "flags": None})

    def on_connect(client, userdata, flags, reason_code, properties):
        userdata["flags"] = flags
        userdata["reason"] = reason_code
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), "paho connected"
    return client


# --- tests ---------------------------------------------------------------------------------

def test_50000_qos1_publishes_from_mosquitto_pub_all_land_keyed_by_topic(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    runs, per_run = 5, 10_000  # mosquitto_pub -l -q 1 drops lines past 65,535 per run
    publishers = []
    for run in range(runs):
        lines = "\n".join(f"dev{run}:{n}" for n in range(per_run)) + "\n"
        process = subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", f"sensors/dev{run}", "-q", "1", "-l",
             "-i", f"publisher-{run}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        publishers.append((process, lines))
    require_tool("mosquitto_pub")
    for process, lines in publishers:
        threading.Thread(target=process.communicate, args=(lines,), daemon=True).start()
    for process, _ in publishers:
        assert process.wait(timeout=300) == 0

    records = read_topic(node.kafka, "sensors", runs * per_run, timeout=120)
    assert len(records) == runs * per_run
    by_key = collections.defaultdict(list)
    for record in records:
        by_key[record.key()].append(record.value())
        headers = dict(record.headers())
        assert headers["mqtt.topic"] == record.key()
        assert headers["mqtt.qos"] == b"1"
        assert headers["mqtt.retain"] == b"false"
    assert sorted(by_key) == [f"sensors/dev{run}".encode() for run in range(runs)]
    for run in range(runs):
        # Every message, once, in publish order.
        assert by_key[f"sensors/dev{run}".encode()] == [f"dev{run}:{n}".encode() for n in range(per_run)]


def test_route_with_key_template_and_first_match_wins(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, routes=(
        ("sensors/+/temp", "temperatures", "{2}@{client_id}"),
        ("sensors/#", "sensors", None),
    ))
    assert mosquitto_pub_lines(port, "sensors/kitchen/temp", ["21.5"], client_id="thermo-1").returncode == 0
    assert mosquitto_pub_lines(port, "sensors/kitchen/humidity", ["40"], client_id="thermo-1").returncode == 0

    temperatures = read_topic(node.kafka, "temperatures", 1)
    assert [(r.key(), r.value()) for r in temperatures] == [(b"kitchen@thermo-1", b"21.5")]
    assert dict(temperatures[0].headers())["mqtt.client_id"] == b"thermo-1"
    others = read_topic(node.kafka, "sensors", 1)
    assert [(r.key(), r.value()) for r in others] == [(b"sensors/kitchen/humidity", b"40")]


def test_unrouted_messages_are_acknowledged_with_no_matching_subscribers(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    client = paho_client(port, "v5-unrouted", protocol=mqtt.MQTTv5)
    reasons = []
    done = threading.Event()
    client.on_publish = lambda c, u, mid, reason_code, properties: (reasons.append(reason_code.value), done.set())
    client.publish("nowhere/else", b"x", qos=1).wait_for_publish(10)
    assert done.wait(10)
    client.disconnect()
    client.loop_stop()
    assert reasons == [0x10]  # No matching subscribers: no route took it


def test_mqtt5_user_properties_become_headers(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    client = paho_client(port, "v5-sensor", protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("unit", "C"), ("room", "kitchen")]
    properties.ContentType = "text/plain"
    client.publish("sensors/kitchen/temp", b"21.5", qos=1, retain=True, properties=properties).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()

    [record] = read_topic(node.kafka, "sensors", 1)
    headers = record.headers()
    assert ("unit", b"C") in headers and ("room", b"kitchen") in headers
    assert ("mqtt.content_type", b"text/plain") in headers
    assert ("mqtt.retain", b"true") in headers
    assert ("mqtt.client_id", b"v5-sensor") in headers
    assert record.value() == b"21.5"


def test_qos2_publishes_land_exactly_once(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    client = paho_client(port, "qos2-sender")
    infos = [client.publish("sensors/qos2", f"m{n}".encode(), qos=2) for n in range(200)]
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    # A resent QoS 2 PUBLISH (same packet id, DUP) before PUBREL is not written twice.
    sock = raw_client(port, "qos2-raw")
    sock.sendall(publish_packet("sensors/qos2", b"dup", qos=2, packet_id=7))
    assert recv_exact(sock, 4) == b"\x50\x02\x00\x07"  # PUBREC
    sock.sendall(publish_packet("sensors/qos2", b"dup", qos=2, packet_id=7, dup=True))
    assert recv_exact(sock, 4) == b"\x50\x02\x00\x07"  # PUBREC again, nothing written
    sock.sendall(b"\x62\x02\x00\x07")  # PUBREL
    assert recv_exact(sock, 4) == b"\x70\x02\x00\x07"  # PUBCOMP
    sock.close()

    records = read_topic(node.kafka, "sensors", 201)
    values = [r.value() for r in records]
    assert values == [f"m{n}".encode() for n in range(200)] + [b"dup"]


def test_malformed_input_leaves_the_server_serving_others(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, extra="max_packet_bytes = 4096")
    before = paho_client(port, "connected-before")

    bad_inputs = {
        "garbage instead of CONNECT": b"\xff\xff\xff\xff\xff\xff",
        "PUBLISH before CONNECT": publish_packet("sensors/x", b"x"),
        "unknown protocol name": b"\x10\x0c\x00\x04AMQP\x04\x02\x00\x3c\x00\x00",
        "five-byte remaining length": None,
        "oversize packet": None,
        "invalid UTF-8 topic": None,
        "reserved packet type": None,
    }
    for name, data in bad_inputs.items():
        if data is None:
            sock = raw_client(port, f"bad-{len(name)}")
            data = {
                "five-byte remaining length": b"\x30\xff\xff\xff\xff\x7f",
                "oversize packet": b"\x30" + remaining_length(100_000) + b"\x00",
                "invalid UTF-8 topic": b"\x32\x06\x00\x02\xc3\x28\x00\x01",
                "reserved packet type": b"\x00\x00",
            }[name]
        else:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(data)
        assert closed_by_server(sock), f"{name}: the server must close that connection"
        sock.close()
    # A half-sent frame from a client that then vanishes.
    sock = raw_client(port, "half")
    sock.sendall(b"\x32\x40\x00")
    sock.close()

    before.publish("sensors/after", b"from-before", qos=1).wait_for_publish(10)
    before.disconnect()
    before.loop_stop()
    assert mosquitto_pub_lines(port, "sensors/after", ["from-new"]).returncode == 0
    records = read_topic(node.kafka, "sensors", 2)
    assert sorted(r.value() for r in records) == [b"from-before", b"from-new"]
    assert node.alive()


def test_subscriptions_are_refused_with_a_clear_reason_code(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    for protocol, expected in ((mqtt.MQTTv311, 0x80), (mqtt.MQTTv5, 0x83)):
        client = paho_client(port, f"subscriber-{protocol}", protocol=protocol)
        codes = []
        done = threading.Event()

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            codes.extend(code.value for code in reason_codes)
            done.set()

        client.on_subscribe = on_subscribe
        client.subscribe("sensors/#", qos=1)
        assert done.wait(10)
        client.disconnect()
        client.loop_stop()
        assert codes == [expected]


def test_credentials_from_config(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, extra='users = { sensor = "s3cret" }')
    anonymous = mosquitto_pub_lines(port, "sensors/x", ["nope"])
    assert anonymous.returncode != 0 and "not authori" in (anonymous.stdout + anonymous.stderr).lower()
    wrong = mosquitto_pub_lines(port, "sensors/x", ["nope"], extra=["-u", "sensor", "-P", "wrong"])
    assert wrong.returncode != 0
    right = mosquitto_pub_lines(port, "sensors/x", ["yes"], extra=["-u", "sensor", "-P", "s3cret"])
    assert right.returncode == 0, right.stderr
    assert [r.value() for r in read_topic(node.kafka, "sensors", 1)] == [b"yes"]


def test_will_message_lands_when_a_client_vanishes(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    polite = raw_client(port, "polite", will=("sensors/polite/status", b"gone"))
    polite.sendall(b"\xe0\x00")  # DISCONNECT: no will
    polite.close()
    vanishing = raw_client(port, "vanishing", will=("sensors/vanishing/status", b"offline"))
    vanishing.close()  # no DISCONNECT: the will is published
    wait_for_log_line(node, "will message published")
    time.sleep(0.5)  # room for a wrong second will to land too
    records = read_topic(node.kafka, "sensors", 1, timeout=20)
    assert [(r.key(), r.value()) for r in records] == [(b"sensors/vanishing/status", b"offline")]


def test_persistent_sessions_are_resumed(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    first = paho_client(port, "keeper", clean_session=False)
    assert first.user_data_get()["flags"].session_present is False
    first.disconnect()
    first.loop_stop()
    second = paho_client(port, "keeper", clean_session=False)
    assert second.user_data_get()["flags"].session_present is True
    second.disconnect()
    second.loop_stop()
    clean = paho_client(port, "keeper", clean_session=True)
    assert clean.user_data_get()["flags"].session_present is False
    clean.disconnect()
    clean.loop_stop()


def test_bridge_protocol_levels_are_accepted(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    sock = raw_client(port, "a-bridge", level=0x84)  # 3.1.1 with Mosquitto's try_private bit
    sock.sendall(publish_packet("sensors/bridged", b"via-bridge", qos=1, packet_id=1))
    assert recv_exact(sock, 4) == b"\x40\x02\x00\x01"  # PUBACK
    sock.close()
    assert [r.value() for r in read_topic(node.kafka, "sensors", 1)] == [b"via-bridge"]
    wait_for_log_line(node, "bridge=true")


def test_a_second_connection_with_the_same_client_id_takes_over(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    old = raw_client(port, "twin")
    new = raw_client(port, "twin")
    assert closed_by_server(old), "the older connection is closed"
    new.sendall(publish_packet("sensors/twin", b"still-here", qos=1, packet_id=3))
    assert recv_exact(new, 4) == b"\x40\x02\x00\x03"
    new.close()
    assert [r.value() for r in read_topic(node.kafka, "sensors", 1)] == [b"still-here"]


def test_a_full_mqtt_pool_applies_backpressure_and_everything_still_lands(bramble_factory):
    # A 64 MiB budget gives the MQTT pool about 1.4 MiB: four clients with 100 KiB messages
    # and a 20-message window want far more, so their sockets are paused.
    port = free_port()
    sections = '[memory]\nbudget = "64MiB"\n' + mqtt_sections(port, [("sensors/#", "sensors", None)],
                                                                   extra="max_packet_bytes = 131072")
    node = bramble_factory(sections=sections).start()
    wait_for_port("127.0.0.1", port, process=node.process)
    payload = b"p" * 100_000
    clients, per_client = 4, 40
    errors = []

    def publish(n):
        try:
            client = paho_client(port, f"heavy-{n}")
            infos = [client.publish(f"sensors/heavy/{n}", payload + str(i).encode(), qos=1) for i in range(per_client)]
            for info in infos:
                info.wait_for_publish(120)
            client.disconnect()
            client.loop_stop()
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert not errors
    records = read_topic(node.kafka, "sensors", clients * per_client, timeout=120)
    assert len(records) == clients * per_client
    wait_for_log_line(node, "memory pool exhausted")  # the pool did run dry: backpressure, not buffering


def test_a_small_inflight_window_still_acknowledges_everything_in_order(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, extra="max_inflight_messages = 3")
    sock = raw_client(port, "window")
    # 200 QoS 1 publishes at once: bramble reads three at a time, acknowledging in order.
    sock.sendall(b"".join(publish_packet("sensors/window", str(n).encode(), packet_id=n + 1) for n in range(200)))
    acks = recv_exact(sock, 4 * 200)
    assert [struct.unpack(">H", acks[i + 2:i + 4])[0] for i in range(0, len(acks), 4)] == list(range(1, 201))
    sock.close()
    assert [r.value() for r in read_topic(node.kafka, "sensors", 200)] == [str(n).encode() for n in range(200)]


def test_mqtt_counters_are_in_the_metrics(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, routes=(("sensors/#", "sensors", None),))
    assert mosquitto_pub_lines(port, "sensors/a", ["12345", "678"]).returncode == 0
    assert mosquitto_pub_lines(port, "elsewhere", ["x"]).returncode == 0
    keeper = paho_client(port, "still-connected")
    with urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    keeper.disconnect()
    keeper.loop_stop()
    assert 'bramble_mqtt_messages_in_total{route="sensors/#",topic="sensors"} 2' in text
    assert 'bramble_mqtt_bytes_in_total{route="sensors/#",topic="sensors"} 8' in text
    assert "bramble_mqtt_unrouted_messages_total 1" in text
    assert "bramble_mqtt_connected_clients 1" in text
    assert 'bramble_messages_in_total{topic="sensors"} 2' in text  # the per-topic log counter too
