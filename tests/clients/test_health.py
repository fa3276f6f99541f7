"""Health you can see, against a real bramble process: the LED backends (file, sysfs on a fake
LED directory, a missing LED), /health, /metrics and /commands over HTTP, systemd notify
messages on a socket the test binds, and `bramble status --json`."""
import json
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY


def get(node, path):
    """(status code, body text) of GET http://<admin><path>."""
    try:
        with urllib.request.urlopen(f"http://{node.admin}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def health(node):
    code, body = get(node, "/health")
    return code, json.loads(body)


def metrics(node):
    code, body = get(node, "/metrics")
    assert code == 200
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def led_lines(path):
    if not path.exists():
        return []
    return [line.split(" ") for line in path.read_text().splitlines()]


def test_file_led_records_leader_for_a_single_node(bramble_factory, tmp_path):
    led = tmp_path / "led.log"
    node = bramble_factory(sections=f'[led]\nbackend = "file"\npath = "{led}"\n').start()
    before = int(time.time() * 1000)
    lines = wait_until(lambda: [l for l in led_lines(led) if l[1] == "leader"] and led_lines(led), what="leader line")
    assert [l[1:] for l in lines] == [["booting", "flash"], ["leader", "solid"]]
    for unix_ms, _, _ in lines:
        assert abs(int(unix_ms) - before) < 60_000
    node.stop()


def test_sysfs_led_blinks_a_fake_led_directory_and_gives_it_back(bramble_factory, tmp_path):
    led = tmp_path / "leds" / "ACT"
    led.mkdir(parents=True)
    (led / "trigger").write_text("none [mmc0] timer heartbeat\n")
    (led / "brightness").write_text("0\n")
    (led / "max_brightness").write_text("1\n")
    node = bramble_factory(
        sections=f'[led]\nbackend = "sysfs"\npath = "{led}"\n[led.patterns]\nleader = "200,200"\n'
    ).start()
    wait_until(lambda: health(node)[1]["state"] == "leader", what="leader")
    assert (led / "trigger").read_text().strip() == "none"
    # Sample brightness for 2.5 s and record the edges.
    edges, last = [], None
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        value = (led / "brightness").read_text().strip()
        if value in ("0", "1") and value != last:
            edges.append((time.monotonic(), value))
            last = value
        time.sleep(0.005)
    gaps = [b[0] - a[0] for a, b in zip(edges, edges[1:])]
    assert 9 <= len(gaps) <= 14, f"edges: {edges}"
    assert all(values == ("0", "1") or values == ("1", "0") for values in zip([e[1] for e in edges], [e[1] for e in edges][1:]))
    # Every edge 200 ms after the one before (loose bounds: a shared CI machine).
    assert all(0.12 < gap < 0.32 for gap in gaps), gaps
    assert 0.17 < sum(gaps) / len(gaps) < 0.23, gaps
    node.stop()
    assert (led / "trigger").read_text().strip() == "mmc0"
    assert (led / "brightness").read_text().strip() == "0"


def test_a_missing_led_warns_and_the_node_serves(bramble_factory):
    node = bramble_factory(sections='[led]\nbackend = "sysfs"\npath = "/nonexistent/leds/ACT"\n').start()
    code, body = wait_until(lambda: (lambda r: r if r[1]["state"] == "leader" else None)(health(node)), what="leader")
    assert code == 200
    assert "status LED not available" in node.log_tail(200)
    node.stop()
    gpio = bramble_factory(sections='[led]\nbackend = "gpio"\nchip = "no-such-chip"\nline = 17\n').start()
    wait_until(lambda: health(gpio)[1]["state"] == "leader", what="leader")
    assert "no GPIO chip labelled no-such-chip" in gpio.log_tail(200)


def test_health_json_has_the_node_at_a_glance(bramble):
    code, body = wait_until(lambda: (lambda r: r if r[1]["state"] == "leader" else None)(health(bramble)), what="leader")
    assert code == 200
    assert body["node"] == 1 and body["role"] == "leader" and body["leader"] == 1
    assert body["quorum"] is True and body["serving"] is True
    assert body["zxid"].startswith("0x")
    assert body["kafka"] == bramble.kafka
    assert set(body["partitions"]) >= {"online", "under_replicated", "offline"}
    assert body["memory"]["resident_bytes"] > 0
    assert body["memory"]["budget_bytes"] > 0
    assert body["memory"]["pools"]["kafka_requests"]["limit_bytes"] > 0
    assert body["disk"]["total_bytes"] >= body["disk"]["used_bytes"] > 0
    assert "celsius" in body["temperature"]


def test_degraded_when_the_disk_is_over_its_threshold(bramble_factory, tmp_path):
    led = tmp_path / "led.log"
    node = bramble_factory(
        admin_config="disk_usage_degraded_percent = 1",
        sections=f'[led]\nbackend = "file"\npath = "{led}"\n',
    ).start()
    code, body = wait_until(lambda: (lambda r: r if r[1]["state"] == "degraded" else None)(health(node)), what="degraded")
    assert code == 200, "degraded still serves"
    assert "disk" in body["reason"]
    assert ["degraded", "double-blink"] in [l[1:] for l in led_lines(led)]


def test_metrics_parse_and_grow_with_load(bramble):
    before = metrics(bramble)
    assert sample(before, "bramble_health_state", state="leader") == 1
    assert sample(before, "bramble_zk_znodes") >= 1
    assert sample(before, "bramble_memory_resident_bytes") > 0
    assert sample(before, "bramble_memory_budget_bytes") > 0
    assert sample(before, "bramble_memory_pool_limit_bytes", pool="fetch_responses") > 0
    admin = AdminClient({"bootstrap.servers": bramble.kafka})
    admin.create_topics([NewTopic("metered", num_partitions=2, replication_factor=1)])["metered"].result(15)
    producer = Producer({"bootstrap.servers": bramble.kafka, "linger.ms": 5})
    for i in range(50):
        producer.produce("metered", key=str(i).encode(), value=b"x" * 100)
    assert producer.flush(15) == 0
    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "metrics-reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["metered"])
    received, deadline = 0, time.monotonic() + 30
    while received < 50 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received += 1
    consumer.close()
    assert received == 50
    after = metrics(bramble)
    assert sample(after, "bramble_messages_in_total", topic="metered") == 50
    assert sample(after, "bramble_bytes_in_total", topic="metered") > 50 * 100
    assert sample(after, "bramble_messages_out_total", topic="metered") >= 50
    assert sample(after, "bramble_kafka_requests_total", api="Produce") >= 1
    assert sample(after, "bramble_kafka_request_duration_seconds_count", api="Fetch") >= 1
    assert sample(after, "bramble_kafka_request_duration_seconds_bucket", api="Produce", le="+Inf") >= 1
    assert sample(after, "bramble_partitions", state="online") >= 2
    assert sample(after, "bramble_consumer_groups") >= 1
    assert (sample(after, "bramble_kafka_requests_total", api="Metadata") or 0) > (
        sample(before, "bramble_kafka_requests_total", api="Metadata") or 0)


def test_commands_answer_like_zookeepers_admin_server(bramble):
    code, body = get(bramble, "/commands/monitor")
    assert code == 200
    mntr = json.loads(body)
    assert mntr["command"] == "monitor" and mntr["error"] is None
    assert mntr["zk_znode_count"] >= 1 and mntr["zk_server_state"] == "standalone"
    assert json.loads(get(bramble, "/commands/ruok")[1])["ok"] is True
    assert json.loads(get(bramble, "/commands/srvr")[1])["command"] == "server_stats"
    assert get(bramble, "/commands/nope")[0] == 404
    assert get(bramble, "/nowhere")[0] == 404


def test_systemd_notify_ready_status_watchdog_stopping(bramble_factory, tmp_path):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.2)
    node = bramble_factory()
    node.env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    node.start()
    messages = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            messages.append(server.recv(4096).decode())
        except socket.timeout:
            pass
    ready = [m for m in messages if m.startswith("READY=1")]
    assert len(ready) == 1, messages
    assert "STATUS=serving as node 1; leader" in ready[0]
    assert sum(m == "WATCHDOG=1" for m in messages) >= 5, messages
    node.stop()
    rest = []
    try:
        while True:
            rest.append(server.recv(4096).decode())
    except socket.timeout:
        pass
    assert any(m.startswith("STOPPING=1") for m in rest), rest
    assert not any(m == "WATCHDOG=1" for m in rest[rest.index(next(m for m in rest if m.startswith("STOPPING=1"))) + 1:])


def test_bramble_status_json_and_table(bramble):
    admin = AdminClient({"bootstrap.servers": bramble.kafka})
    admin.create_topics([NewTopic("status-topic", num_partitions=2, replication_factor=1)])["status-topic"].result(15)
    wait_until(lambda: health(bramble)[1]["state"] == "leader", what="leader")
    out = subprocess.run([str(BINARY), "status", "--json", "--admin", bramble.admin],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    node = report["nodes"][0]["health"]
    assert node["state"] == "leader" and node["node"] == 1
    topic = next(t for t in report["topics"] if t["name"] == "status-topic")
    assert [p["partition"] for p in topic["partitions"]] == [0, 1]
    assert all(p["leader"] == 1 and p["isr"] == [1] for p in topic["partitions"])
    table = subprocess.run([str(BINARY), "status", "--admin", bramble.admin],
                           capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    assert "leader" in table.stdout and "status-topic" in table.stdout
    down = subprocess.run([str(BINARY), "status", "--json", "--admin", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=30)
    assert down.returncode != 0 and "error" in json.loads(down.stdout)["nodes"][0]
