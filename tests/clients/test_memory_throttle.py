"""Backpressure that clients see: when the fetch pool is short, Fetch answers carry
throttle_time_ms, which librdkafka reports through its throttle callback; /metrics counts
the throttled answers and the pool's exhausted episodes."""
import re
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import metric

# 64 MiB in a debug build leaves a fetch pool of 6 MiB: three consumers each asking for
# 50 MB cannot all be served in full at once.
BUDGET = '[memory]\nbudget = "64MiB"\n'


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


def test_produce_under_request_pool_pressure_carries_throttle_time(bramble_factory):
    """Six producers sending ~1 MB batches, five in flight each, want far more than the 6 MiB
    request pool (twice each frame): frames wait for it (TCP backpressure), their Produce
    answers carry throttle_time_ms, librdkafka holds its next request that long, and every
    record is still acknowledged once and read back."""
    node = bramble_factory("", sections=BUDGET).start()
    admin = AdminClient({"bootstrap.servers": node.kafka})
    for f in admin.create_topics([NewTopic("heavy", num_partitions=6, replication_factor=1)]).values():
        f.result(30)
    per_producer = 3000
    value = bytes(1000)
    throttles = []
    acked = [set() for _ in range(6)]
    failed = []

    def produce(index, burst):
        producer = Producer({
            "bootstrap.servers": node.kafka, "acks": "all", "linger.ms": 50,
            "batch.size": 1000000, "batch.num.messages": 1000000,
            "max.in.flight.requests.per.connection": 5, "compression.type": "none",
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        })

        def delivered(err, msg):
            if err is not None:
                failed.append(err)
            else:
                acked[index].add(msg.key())

        for i in range(per_producer):
            while True:
                try:
                    producer.produce("heavy", key=f"{index}-{burst}-{i}".encode(), value=value,
                                     partition=index, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        assert producer.flush(120) == 0

    # Whether six producers' frames overlap enough to fill the pool depends on scheduling
    # (six Python threads share one interpreter lock): burst again, up to four times, until
    # one did; every burst must be acknowledged whole either way.
    bursts = 0
    while bursts < 4 and not any(throttles):
        threads = [threading.Thread(target=produce, args=(i, bursts)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        bursts += 1
        assert not failed, failed[:5]
        assert [len(a) for a in acked] == [bursts * per_producer] * 6, "every record acknowledged"
    # librdkafka reports each throttle (and 0 when it ends); only Produce ran here.
    assert any(throttles), "librdkafka saw no throttle_time_ms on Produce"
    assert all(t == 0 or abs(t - 0.1) < 1e-6 for t in throttles), throttles
    assert metric(node, "bramble_kafka_throttled_total", 'api="Produce"') > 0
    assert metric(node, "bramble_kafka_throttled_total", 'api="Fetch"') == 0
    assert settled_metric(node, "bramble_memory_pool_exhausted_total", 'pool="kafka_requests"',
                          lambda v: v > 0) > 0

    # Nothing lost: every acknowledged record is in the log, once.
    consumer = Consumer({"bootstrap.servers": node.kafka, "group.id": "heavy-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["heavy"])
    seen = {}
    deadline = time.monotonic() + 120
    while sum(seen.values()) < 6 * bursts * per_producer and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen[msg.key()] = seen.get(msg.key(), 0) + 1
    consumer.close()
    assert set(seen) == set().union(*acked)
    assert set(seen.values()) == {1}, "no record duplicated"
