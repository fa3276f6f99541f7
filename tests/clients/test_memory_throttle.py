"""Backpressure that clients see: when the fetch pool is short, Fetch answers carry
throttle_time_ms, which librdkafka reports through its throttle callback; /metrics counts
the throttled answers and the pool's exhausted episodes."""
import re
import threading
import time
import urllib.request

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

# 64 MiB in a debug build leaves a fetch pool of 6 MiB: three consumers each asking for
# 50 MB cannot all be served in full at once.
BUDGET = '[memory]\nbudget = "64MiB"\n'


def metric(node, name, labels):
    with urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name}\{{{labels}\}} (\d+)$", text, re.M)
    return int(match.group(1)) if match else 0


def settled_metric(node, name, labels, want):
    """The metric once `want(value)` holds (pool figures refresh at each health tick)."""
    deadline = time.monotonic() + 15
    while True:
        value = metric(node, name, labels)
        if want(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_fetches_under_pool_pressure_carry_throttle_time(bramble_factory):
    node = bramble_factory("", sections=BUDGET).start()
    admin = AdminClient({"bootstrap.servers": node.kafka})
    for f in admin.create_topics([NewTopic("wide", num_partitions=3, replication_factor=1)]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": node.kafka, "acks": "all", "linger.ms": 20})
    value = bytes(4096)
    for i in range(4096):  # 16 MiB
        while True:
            try:
                producer.produce("wide", key=str(i).encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0

    throttles = []
    counts = [0, 0, 0]

    def consume(index):
        consumer = Consumer({
            "bootstrap.servers": node.kafka, "group.id": f"wide-{index}",
            "auto.offset.reset": "earliest", "fetch.max.bytes": 52428800,
            "max.partition.fetch.bytes": 52428800, "fetch.wait.max.ms": 100,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        })
        consumer.subscribe(["wide"])
        while counts[index] < 4096:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                counts[index] += 1
        consumer.close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert counts == [4096, 4096, 4096], "every consumer read everything despite the pressure"
    # librdkafka reports each throttle, and again (0) when the throttling stops.
    assert any(throttles), "librdkafka saw no throttle_time_ms"
    assert all(t == 0 or abs(t - 0.1) < 1e-6 for t in throttles), throttles
    assert metric(node, "bramble_kafka_throttled_total", 'api="Fetch"') > 0
    assert settled_metric(node, "bramble_memory_pool_exhausted_total", 'pool="fetch_responses"',
                          lambda v: v > 0) > 0
    # Logged once per episode: each pool's warnings match its episode counter.
    log = node.stderr_path.read_text(errors="replace")
    for pool in set(re.findall(r'memory pool exhausted; applying backpressure pool="(\w+)"', log)):
        logged = log.count(f'applying backpressure pool="{pool}"')
        counted = settled_metric(node, "bramble_memory_pool_exhausted_total", f'pool="{pool}"',
                                 lambda v, n=logged: v == n)
        assert logged == counted, (pool, logged, counted)
