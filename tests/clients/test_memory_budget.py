"""The memory budget under load: one node with `budget = "64MiB"` takes sustained acks=all
produce from several librdkafka producers, consumer groups fetching with large
fetch.max.bytes, many idle connections and a burst of large znode writes; its peak resident
memory (VmHWM) stays within the budget, every client keeps making progress, and no
acknowledged record is lost."""
import os
import re
import socket
import subprocess
import threading
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

BUDGET_MIB = 64


def vm_hwm_kib(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))


def test_peak_rss_stays_within_a_64_mib_budget_under_load(bramble_factory):
    node = bramble_factory("", sections=f'[memory]\nbudget = "{BUDGET_MIB}MiB"\n').start()
    admin = AdminClient({"bootstrap.servers": node.kafka})
    for f in admin.create_topics([NewTopic("load", num_partitions=6, replication_factor=1)]).values():
        f.result(30)

    stop = threading.Event()
    acked = [set() for _ in range(4)]
    consumed = [0, 0]
    errors = []

    def produce(index):
        producer = Producer({"bootstrap.servers": node.kafka, "acks": "all", "linger.ms": 5,
                             "queue.buffering.max.kbytes": 8192})
        value = bytes(1024)
        i = 0
        while not stop.is_set():
            key = f"{index}-{i}".encode()
            try:
                producer.produce("load", key=key, value=value,
                                 on_delivery=lambda err, msg, k=key: errors.append(err) if err else acked[index].add(k))
                i += 1
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)
        producer.flush(30)

    def consume(group):
        consumer = Consumer({"bootstrap.servers": node.kafka, "group.id": f"g{group}",
                             "auto.offset.reset": "earliest", "fetch.max.bytes": 52428800,
                             "max.partition.fetch.bytes": 10485760})
        consumer.subscribe(["load"])
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                consumed[group] += 1
        consumer.close()

    idle = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", node.kafka_port))
        idle.append(s)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=consume, args=(g,)) for g in range(2)]
    for t in threads:
        t.start()

    # A burst of large znode writes while the Kafka load runs.
    zk = KazooClient(hosts=node.zk)
    zk.start(timeout=15)
    zk.ensure_path("/big")
    blob = bytes(900 * 1024)
    created, refused = [], 0
    for i in range(int(os.environ.get("BURST", "12"))):
        try:
            zk.create(f"/big/n{i}", blob)
            created.append(i)
        except QuotaExceededError:
            refused += 1  # the znode pool is full: a protocol error, not a crash
    peak = 0
    deadline = time.monotonic() + 20
    progress = []
    while time.monotonic() < deadline:
        peak = max(peak, vm_hwm_kib(node.process.pid))
        progress.append((sum(len(a) for a in acked), consumed[0], consumed[1]))
        time.sleep(1)
    for i in created:
        zk.delete(f"/big/n{i}")
    zk.stop()
    stop.set()
    for t in threads:
        t.join(60)
    peak = max(peak, vm_hwm_kib(node.process.pid))
    for s in idle:
        s.close()

    assert not errors, errors[:3]
    assert created, "the first large znodes fit the budget"
    print(f"znodes created {len(created)}, refused {refused}")
    print(f"peak RSS {peak / 1024:.1f} MiB; acked {sum(len(a) for a in acked)}; consumed {consumed}")
    assert peak <= BUDGET_MIB * 1024, f"peak RSS {peak / 1024:.1f} MiB exceeds the {BUDGET_MIB} MiB budget"
    # Everybody kept making progress through the second half of the run.
    mid, end = progress[len(progress) // 2], progress[-1]
    assert end[0] > mid[0] and end[1] > mid[1] and end[2] > mid[2], progress
    assert all(len(a) > 0 for a in acked)

    # No acknowledged record is lost: read the whole topic back.
    reader = Consumer({"bootstrap.servers": node.kafka, "group.id": "verify", "auto.offset.reset": "earliest",
                       "enable.partition.eof": True})
    reader.subscribe(["load"])
    seen, eof = set(), set()
    deadline = time.monotonic() + 120
    while len(eof) < 6 and time.monotonic() < deadline:
        msg = reader.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:
                eof.add(msg.partition())
            continue
        seen.add(msg.key())
    reader.close()
    missing = set().union(*acked) - seen
    assert not missing, f"{len(missing)} acknowledged records missing"
