#!/usr/bin/env python3
"""Consumer-group benchmarks of a bramble node with librdkafka (confluent-kafka) as the client:

1. how long a group of N consumers takes to form (first join of a new group), to rebalance
   when one more joins, and when one leaves;
2. consume throughput through a group (subscribe, auto commit) versus plain fetch (assign).

    .venv/bin/python bench/groups.py [--binary target/release/bramble] [--mib 128]
        [--sizes 1,2,4,8] [--heartbeat-ms 3000]

Rebalance times depend mostly on the clients' heartbeat interval (members learn of a
rebalance from a heartbeat answer) and on bramble's group_initial_rebalance_delay_ms (300 ms)
for a new group. Prints Markdown tables for BENCHMARKS.md.
"""
import argparse
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A bramble process on free loopback ports (Kafka and the ZooKeeper listener), its peak
    RSS sampled from /proc."""

    def __init__(self, binary, workdir):
        self.port = free_port()
        workdir = pathlib.Path(workdir)
        config = workdir / "bramble.toml"
        config.write_text(
            f'[coordinator]\nlisten = "127.0.0.1:{free_port()}"\ndata_dir = "{workdir / "zookeeper"}"\n'
            f'[node]\nid = 1\n[broker]\nlisteners = ["127.0.0.1:{self.port}"]\n'
            f'log_dirs = ["{workdir / "kafka-logs"}"]\n'
        )
        self.process = subprocess.Popen([binary, "serve", "--config", str(config)], stderr=open(workdir / "log", "wb"))
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"bramble did not start; see {workdir / 'log'}")
                time.sleep(0.05)
        self.peak_rss_kib = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        try:
            status = pathlib.Path(f"/proc/{self.process.pid}/status").read_text()
            self.peak_rss_kib = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        except (OSError, AttributeError):
            pass
        self.process.terminate()
        self.process.wait(30)


PARTITIONS = 16


class Member(threading.Thread):
    """One group member polling in its own thread, recording its assignment."""

    def __init__(self, address, group, topic, heartbeat_ms):
        super().__init__(daemon=True)
        self.topic = topic
        self.partitions = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.consumer = Consumer({"bootstrap.servers": address, "group.id": group,
                                  "session.timeout.ms": max(6000, heartbeat_ms * 3),
                                  "heartbeat.interval.ms": heartbeat_ms,
                                  "partition.assignment.strategy": "range"})

    def on_assign(self, _consumer, partitions):
        with self.lock:
            self.partitions = {p.partition for p in partitions}

    def on_revoke(self, _consumer, _partitions):
        with self.lock:
            self.partitions = set()

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stop_event.is_set():
            self.consumer.poll(0.05)
        self.consumer.close()

    def assignment(self):
        with self.lock:
            return set(self.partitions)


def settled(members):
    got = [m.assignment() for m in members]
    fair = {PARTITIONS // len(members), -(-PARTITIONS // len(members))}
    return (set().union(*got) == set(range(PARTITIONS)) and sum(map(len, got)) == PARTITIONS
            and all(len(a) in fair for a in got))


def wait_settled(members, timeout=120):
    start = time.monotonic()
    while not settled(members):
        if time.monotonic() - start > timeout:
            raise TimeoutError([m.assignment() for m in members])
        time.sleep(0.01)
    return time.monotonic() - start


def rebalance_times(address, sizes, heartbeat_ms):
    admin = AdminClient({"bootstrap.servers": address})
    rows = []
    for n in sizes:
        topic = f"rebalance-{n}-{int(time.time() * 1000) % 100000}"
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(60)
        group = f"g-{topic}"
        members = [Member(address, group, topic, heartbeat_ms) for _ in range(n)]
        start = time.monotonic()
        for m in members:
            m.start()
        wait_settled(members)
        formed = time.monotonic() - start
        extra = Member(address, group, topic, heartbeat_ms)
        start = time.monotonic()
        extra.start()
        joined = wait_settled(members + [extra])
        start = time.monotonic()
        extra.stop_event.set()
        left = wait_settled(members)
        extra.join(30)
        for m in members:
            m.stop_event.set()
        for m in members:
            m.join(30)
        rows.append((n, formed, joined, left))
    return rows


def produce(address, topic, total_bytes, record_bytes=1024):
    producer = Producer({"bootstrap.servers": address, "linger.ms": 5, "batch.size": 1 << 20,
                         "queue.buffering.max.kbytes": 1 << 18})
    value = os.urandom(record_bytes)
    count = total_bytes // record_bytes
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % 3)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return count


def drain(consumer, expected):
    got = size = 0
    first = None
    start = time.perf_counter()
    while got < expected:
        # consume() waits for the full count or the timeout: never ask for more than is left.
        batch = consumer.consume(min(10000, expected - got), 10.0)
        if not batch:
            break
        for msg in batch:
            if msg.error() is None:
                if first is None:
                    first = time.perf_counter() - start
                got += 1
                size += len(msg.value())
    elapsed = time.perf_counter() - start
    consumer.close()
    assert got == expected, (got, expected)
    return got, size, elapsed, first


def consume_throughput(address, mib):
    admin = AdminClient({"bootstrap.servers": address})
    topic = f"throughput-{int(time.time() * 1000) % 100000}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(60)
    count = produce(address, topic, mib << 20)
    common = {"bootstrap.servers": address, "fetch.max.bytes": 16 << 20, "max.partition.fetch.bytes": 4 << 20}
    plain = Consumer({**common, "group.id": "unused", "enable.auto.commit": False})
    plain.assign([TopicPartition(topic, p, 0) for p in range(3)])
    rows = [("plain fetch (assign)", *drain(plain, count))]
    grouped = Consumer({**common, "group.id": f"tp-{topic}", "auto.offset.reset": "earliest",
                        "enable.auto.commit": True, "auto.commit.interval.ms": 1000})
    grouped.subscribe([topic])
    rows.append(("group (subscribe, auto commit 1 s)", *drain(grouped, count)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "bramble"))
    parser.add_argument("--mib", type=int, default=128, help="MiB of 1 KiB records for the throughput case")
    parser.add_argument("--sizes", default="1,2,4,8", help="group sizes to rebalance")
    parser.add_argument("--heartbeat-ms", type=int, default=3000, help="heartbeat.interval.ms (librdkafka default 3000)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=ROOT) as workdir:
        node = Node(args.binary, workdir)
        try:
            rebalances = rebalance_times(node.address, sizes, args.heartbeat_ms)
            throughput = consume_throughput(node.address, args.mib)
        finally:
            node.stop()
    print(f"machine: {os.cpu_count()} cores; {PARTITIONS}-partition topic, range assignor, "
          f"heartbeat.interval.ms={args.heartbeat_ms}; bramble peak RSS {node.peak_rss_kib / 1024:.1f} MiB\n")
    print("| consumers N | new group formed (N join) | one more joins (N+1) | one leaves (back to N) |")
    print("|---:|---:|---:|---:|")
    for n, formed, joined, left in rebalances:
        print(f"| {n} | {formed * 1000:.0f} ms | {joined * 1000:.0f} ms | {left * 1000:.0f} ms |")
    print("\n| consume, 1 KiB records | first record after | records/s from then on | MiB/s |")
    print("|---|---:|---:|---:|")
    for name, got, size, elapsed, first in throughput:
        # The group's join is in "first record after"; the rate is the steady state.
        steady = elapsed - first
        print(f"| {name} | {first * 1000:.0f} ms | {got / steady:,.0f} | {size / steady / (1 << 20):.1f} |")


if __name__ == "__main__":
    sys.exit(main())
