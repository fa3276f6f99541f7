"""Bridges both ways with a real Mosquitto: bramble's bridge subscribes to Mosquitto, and a
Mosquitto bridge (try_private on) pushes into bramble's listener."""
import collections
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import require_tool
from mqtt_support import Mosquitto, mosquitto_pub_lines, mqtt_sections, read_topic, start_mqtt_bramble, wait_for_log_line


@pytest.fixture
def mosquitto(tmp_path):
    brokers = []

    def make(extra_config="", name="mosquitto"):
        broker = Mosquitto(tmp_path, extra_config, name=name)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        broker.stop()


def bridged_bramble(bramble_factory, broker_port, **bridge):
    settings = {"url": f"mqtt://127.0.0.1:{broker_port}", "subscribe": ["bridge/#"], "topic": "bridged", "qos": 1,
                "reconnect_max_ms": 500}
    settings.update(bridge)
    node = bramble_factory(sections=mqtt_sections(None, bridges=[settings]))
    return node.start()


def publish_concurrently(port, runs, per_run, topic_prefix):
    require_tool("mosquitto_pub")
    processes = []
    for run in range(runs):
        lines = "\n".join(f"{run}:{n}" for n in range(per_run)) + "\n"
        process = subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", f"{topic_prefix}/{run}", "-q", "1", "-l"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=process.communicate, args=(lines,), daemon=True).start()
        processes.append(process)
    for process in processes:
        assert process.wait(timeout=300) == 0


def test_bridge_moves_20000_qos1_messages_from_mosquitto(bramble_factory, mosquitto):
    broker = mosquitto()
    node = bridged_bramble(bramble_factory, broker.port)
    wait_for_log_line(node, "subscribed")
    runs, per_run = 2, 10_000
    publish_concurrently(broker.port, runs, per_run, "bridge/line")

    records = read_topic(node.kafka, "bridged", runs * per_run, timeout=180)
    assert len(records) == runs * per_run
    by_key = collections.defaultdict(list)
    for record in records:
        by_key[record.key()].append(record.value())
    for run in range(runs):
        assert by_key[f"bridge/line/{run}".encode()] == [f"{run}:{n}".encode() for n in range(per_run)]
    assert dict(records[0].headers())["mqtt.client_id"].startswith(b"bramble-1-bridge0")
    with urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'bramble_mqtt_bridge_up{bridge="bridge0"} 1' in text
    assert f'bramble_mqtt_bridge_messages_total{{bridge="bridge0"}} {runs * per_run}' in text


def test_bridge_reconnects_and_resubscribes_after_the_broker_restarts(bramble_factory, mosquitto):
    broker = mosquitto()
    node = bridged_bramble(bramble_factory, broker.port)
    wait_for_log_line(node, "subscribed")
    assert mosquitto_pub_lines(broker.port, "bridge/a", [f"before-{n}" for n in range(100)]).returncode == 0
    assert len(read_topic(node.kafka, "bridged", 100)) == 100

    # Mosquitto runs without persistence: the restart forgets bramble's session and its
    # subscription, so only bramble's re-subscribe brings messages again.
    broker.stop()
    wait_for_log_line(node, "bridge disconnected")
    subscriptions_so_far = node.stderr_path.read_text(errors="replace").count("subscribed")
    broker.start()  # same port
    deadline = time.monotonic() + 30
    while node.stderr_path.read_text(errors="replace").count("subscribed") <= subscriptions_so_far:
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.1)
    assert mosquitto_pub_lines(broker.port, "bridge/a", [f"after-{n}" for n in range(100)]).returncode == 0
    records = read_topic(node.kafka, "bridged", 200)
    values = [r.value() for r in records]
    assert values[:100] == [f"before-{n}".encode() for n in range(100)]
    assert values[100:] == [f"after-{n}".encode() for n in range(100)]


def test_bridge_keeps_messages_published_while_bramble_was_down(bramble_factory, mosquitto):
    broker = mosquitto()
    node = bridged_bramble(bramble_factory, broker.port)
    wait_for_log_line(node, "subscribed")
    node.stop()
    # The persistent session (clean session off) makes Mosquitto queue these for bramble.
    assert mosquitto_pub_lines(broker.port, "bridge/queued", [f"q{n}" for n in range(500)]).returncode == 0
    node.start()
    records = read_topic(node.kafka, "bridged", 500)
    assert [r.value() for r in records] == [f"q{n}".encode() for n in range(500)]


def test_mosquitto_bridge_pushes_into_the_listener(bramble_factory, mosquitto):
    node, port = start_mqtt_bramble(bramble_factory)
    broker = mosquitto(extra_config=(
        "connection to-bramble\n"
        f"address 127.0.0.1:{port}\n"
        "topic sensors/# out 1\n"
        "try_private true\n"
        "bridge_protocol_version mqttv311\n"
        "cleansession false\n"
        "remote_clientid mosquitto-edge\n"
    ))
    wait_for_log_line(node, "bridge=true")  # protocol level 0x84 accepted
    runs, per_run = 2, 2_500
    publish_concurrently(broker.port, runs, per_run, "sensors/edge")
    records = read_topic(node.kafka, "sensors", runs * per_run, timeout=120)
    assert len(records) == runs * per_run
    by_key = collections.Counter(r.key() for r in records)
    assert by_key == {f"sensors/edge/{run}".encode(): per_run for run in range(runs)}
    assert dict(records[0].headers())["mqtt.client_id"] == b"mosquitto-edge"
