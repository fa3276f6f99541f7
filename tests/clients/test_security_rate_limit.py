"""`security.max_requests_per_second_per_connection`: a client flooding one connection
(kafka-python, kazoo, paho-mqtt) is held near the limit by not being read (TCP
backpressure), keeps its connection, gets every answer, and Kafka answers carry
throttle_time_ms; another connection meanwhile is served at once; /metrics counts it.

The machine running the tests is noisy and shared: rates are asserted with wide margins."""
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from kafka.client_async import KafkaClient
from kafka.protocol.metadata import MetadataRequest_v3
from kazoo.client import KazooClient, KazooState

from conftest import free_port, wait_for_port
from mqtt_support import mqtt_sections

LIMIT = 100  # requests a second; a second's worth (LIMIT) may come at once
FLOOD = 500


def at_most_near_the_limit(count, seconds):
    """The rate past the first second's burst is at most a quarter over the limit, and the
    connection was not stalled (at least a third of the limit)."""
    shortest = (count - LIMIT) / (LIMIT * 1.25)
    longest = 3 * (count - LIMIT) / LIMIT + 5
    assert shortest <= seconds <= longest, f"{count} requests took {seconds:.2f}s"


def metric(node, name, listener):
    text = urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{listener="{listener}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{name} for {listener} missing from /metrics")


def start_node(bramble_factory):
    port = free_port()
    node = bramble_factory(sections=(
        f"[security]\nmax_requests_per_second_per_connection = {LIMIT}\n\n"
        + mqtt_sections(port, routes=[("sensors/#", "sensors", None)])))
    node.start()
    wait_for_port("127.0.0.1", port, process=node.process)
    return node, port


def kafka_client(node):
    client = KafkaClient(bootstrap_servers=node.kafka, api_version=(2, 5),
                         max_in_flight_requests_per_connection=50)
    deadline = time.monotonic() + 20
    while not client.ready(1):
        client.poll(timeout_ms=100)
        assert time.monotonic() < deadline, "no connection"
    return client


def timed_requests(client, count):
    """Send `count` Metadata requests on one connection as fast as the client may; returns
    (seconds, the answers)."""
    futures = []
    started = time.monotonic()
    while len(futures) < count:
        if client.ready(1):
            futures.append(client.send(1, MetadataRequest_v3(topics=[])))
        else:
            client.poll(timeout_ms=5)
    while not all(f.is_done for f in futures):
        client.poll(timeout_ms=50)
        assert time.monotonic() - started < 120, "answers stopped coming"
    elapsed = time.monotonic() - started
    assert all(f.succeeded() for f in futures), [f.exception for f in futures if f.failed()][:3]
    return elapsed, [f.value for f in futures]


def test_a_kafka_flood_is_read_at_the_limit_and_answered_whole(bramble_factory):
    node, _ = start_node(bramble_factory)
    flooder = kafka_client(node)
    connection = flooder._conns[1]
    bystander = kafka_client(node)
    bystander_times = []

    def bystand():
        time.sleep(1.5)  # well into the flood
        for _ in range(10):
            elapsed, _ = timed_requests(bystander, 5)
            bystander_times.append(elapsed)
            time.sleep(0.2)

    other = threading.Thread(target=bystand)
    other.start()
    elapsed, answers = timed_requests(flooder, FLOOD)
    other.join()
    print(f"kafka: {FLOOD} requests in {elapsed:.2f}s; bystander rounds of 5: {bystander_times}")
    at_most_near_the_limit(FLOOD, elapsed)
    assert len(answers) == FLOOD
    assert flooder._conns[1] is connection and connection.connected(), "the flooder was disconnected"
    throttled = [a.throttle_time_ms for a in answers if a.throttle_time_ms > 0]
    assert len(throttled) >= FLOOD // 2, f"only {len(throttled)} answers carried throttle_time_ms"
    # The bystander's 50 requests stayed within its own bucket: never held.
    assert max(bystander_times) < 2.0, bystander_times
    assert metric(node, "bramble_connection_rate_limited_episodes_total", "kafka") >= 1
    assert metric(node, "bramble_connection_rate_limited_requests_total", "kafka") >= FLOOD // 2
    assert metric(node, "bramble_connection_rate_limited_seconds_total", "kafka") >= 1.0
    log = node.stderr_path.read_text(errors="replace")
    assert log.count("max_requests_per_second_per_connection") <= 3, "logged per request"
    flooder.close()
    bystander.close()


def test_a_zookeeper_flood_is_read_at_the_limit_and_keeps_its_session(bramble_factory):
    node, _ = start_node(bramble_factory)
    flooder = KazooClient(hosts=node.zk, timeout=10)
    flooder.start(timeout=15)
    states = []
    flooder.add_listener(states.append)
    session = flooder.client_id
    flooder.ensure_path("/flood")
    bystander = KazooClient(hosts=node.zk, timeout=10)
    bystander.start(timeout=15)

    started = time.monotonic()
    pending = [flooder.create_async(f"/flood/n{i}", b"x") for i in range(FLOOD)]
    time.sleep(1.0)
    quick = time.monotonic()
    for _ in range(20):
        bystander.exists("/flood")
    bystander_elapsed = time.monotonic() - quick
    results = [p.get(timeout=120) for p in pending]
    elapsed = time.monotonic() - started

    print(f"zookeeper: {FLOOD} creates in {elapsed:.2f}s; bystander 20 exists in {bystander_elapsed:.3f}s")
    at_most_near_the_limit(FLOOD + 1, elapsed)
    assert len(results) == FLOOD and len(flooder.get_children("/flood")) == FLOOD
    assert flooder.client_id == session and flooder.state == KazooState.CONNECTED
    assert states == [], f"the flooder's connection changed state: {states}"
    assert bystander_elapsed < 2.0, bystander_elapsed
    assert metric(node, "bramble_connection_rate_limited_requests_total", "zookeeper") >= FLOOD // 2
    for client in (flooder, bystander):
        client.stop()
        client.close()


def test_an_mqtt_flood_is_read_at_the_limit_and_every_publish_is_acked(bramble_factory):
    node, port = start_node(bramble_factory)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(FLOOD)
    client.max_queued_messages_set(0)
    connects = []
    client.on_connect = lambda c, u, flags, reason, props: connects.append(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not connects:
        assert time.monotonic() < deadline, "no CONNACK"
        time.sleep(0.05)

    started = time.monotonic()
    sent = [client.publish("sensors/flood", f"m{i}".encode(), qos=1) for i in range(FLOOD)]
    deadline = started + 120
    while not all(info.is_published() for info in sent):
        assert time.monotonic() < deadline, "publishes stopped being acknowledged"
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()

    print(f"mqtt: {FLOOD} QoS 1 publishes acknowledged in {elapsed:.2f}s")
    at_most_near_the_limit(FLOOD, elapsed)
    assert connects == [0], f"the flooder reconnected: {connects}"
    assert metric(node, "bramble_connection_rate_limited_requests_total", "mqtt") >= FLOOD // 2
