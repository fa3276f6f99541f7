#!/usr/bin/env python3
"""Kafka produce/consume throughput of a bramble node, with librdkafka (confluent-kafka) as
the client (kcat, records read from a file, so the client is not the bottleneck), beside the disk's own fsync'd sequential write speed measured in the same run.

    .venv/bin/python bench/kafka.py [--binary target/release/bramble] [--mib 256]
        [--peer HOST:PORT]   # also measure another Kafka-compatible broker, same client

Prints a Markdown table for BENCHMARKS.md. Timings on a shared machine are noisy: compare
ratios within one run.
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

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def disk_fsync_write_mib_s(directory, mib=256):
    """dd with conv=fdatasync: sequential write speed including the final flush."""
    target = pathlib.Path(directory) / "dd-probe"
    out = subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={mib}", "conv=fdatasync"],
                         capture_output=True, text=True, check=True).stderr
    target.unlink()
    seconds = float(re.search(r"([\d.]+) s,", out).group(1))
    return mib / seconds


def budget_mib(text):
    return int(re.match(r"(\d+)", text).group(1))


class Node:
    def __init__(self, binary, workdir, flush_on_ack=True, budget=None):
        self.port = free_port()
        self.zk_port = free_port()
        self.workdir = pathlib.Path(workdir)
        config = self.workdir / "bramble.toml"
        config.write_text(
            "[node]\nid = 1\n[broker]\n"
            f'listeners = ["127.0.0.1:{self.port}"]\n'
            f'log_dirs = ["{self.workdir / "kafka-logs"}"]\n'
            f"log_flush_on_ack = {'true' if flush_on_ack else 'false'}\n"
            # A small budget cannot hold the default 4 MiB request and 1 MiB znode limits.
            + ("socket_request_max_bytes = 1572864\n" if budget and budget_mib(budget) < 64 else "")
            + (f'[memory]\nbudget = "{budget}"\n' if budget else "")
            + "[coordinator]\n"
            f'listen = "127.0.0.1:{self.zk_port}"\n'
            f'data_dir = "{self.workdir / "zookeeper"}"\n'
            + ("jute_maxbuffer = 524288\n" if budget and budget_mib(budget) < 64 else "")
        )
        self.process = subprocess.Popen([binary, "serve", "--config", str(config)],
                                        stderr=open(self.workdir / "log", "wb"))
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample_rss, daemon=True).start()

    def _sample_rss(self):
        while not self._stop.is_set():
            self.peak_rss_kib = max(self.peak_rss_kib, self.vm_hwm_kib())
            time.sleep(0.2)

    def vm_hwm_kib(self):
        try:
            status = pathlib.Path(f"/proc/{self.process.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        except (OSError, AttributeError):
            return 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.peak_rss_kib = max(self.peak_rss_kib, self.vm_hwm_kib())
        self._stop.set()
        self.process.terminate()
        self.process.wait(30)


def kcat(*args, stdin=None):
    result = subprocess.run(["kcat", *args], stdin=stdin, capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def produce(address, topic, record_bytes, total_bytes, acks, workdir):
    """kcat (librdkafka) producing `total_bytes` of `record_bytes` records from a file."""
    count = total_bytes // record_bytes
    lines = pathlib.Path(workdir) / f"records-{record_bytes}"
    if not lines.exists():
        line = (os.urandom(record_bytes).hex()[: record_bytes - 1] + "\n").encode()
        lines.write_bytes(line * count)
    start = time.perf_counter()
    kcat("-b", address, "-P", "-t", topic, "-l", str(lines), "-X", f"request.required.acks={acks}",
         "-X", "linger.ms=5", "-X", "batch.size=1000000", "-X", "queue.buffering.max.kbytes=262144")
    return count, time.perf_counter() - start


def consume(address, topic, expected):
    """kcat reading the topic from the beginning to its end."""
    start = time.perf_counter()
    out = kcat("-b", address, "-C", "-t", topic, "-e", "-q", "-o", "beginning",
               "-X", "fetch.max.bytes=16777216", "-X", "max.partition.fetch.bytes=4194304")
    elapsed = time.perf_counter() - start
    got = out.count(b"\n")
    assert got == expected, (got, expected)
    return len(out), elapsed


def run_cases(address, mib, workdir):
    admin = AdminClient({"bootstrap.servers": address})
    rows = []
    for record_bytes in (1024, 100):
        for acks in ("1", "all"):
            topic = f"bench-{record_bytes}-{acks}-{int(time.time() * 1000) % 100000}"
            for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
                f.result(60)
            total = mib << 20 if record_bytes == 1024 else (mib << 20) // 8
            count, elapsed = produce(address, topic, record_bytes, total, "-1" if acks == "all" else acks, workdir)
            mib_s = count * record_bytes / elapsed / (1 << 20)
            rows.append((f"produce {record_bytes} B, acks={acks}", count / elapsed, mib_s))
            if record_bytes == 1024 and acks == "all":
                size, elapsed = consume(address, topic, count)
                rows.append(("consume 1024 B (page cache)", count / elapsed, size / elapsed / (1 << 20)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "bramble"))
    parser.add_argument("--mib", type=int, default=256, help="MiB produced per 1 KiB case")
    parser.add_argument("--peer", help="host:port of another Kafka-compatible broker to measure too")
    parser.add_argument("--budget", help='memory.budget for the node, e.g. "64MiB" (default: its default)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT) as workdir:
        disk = disk_fsync_write_mib_s(workdir)
        node = Node(args.binary, workdir, budget=args.budget)
        try:
            rows = run_cases(node.address, args.mib, workdir)
        finally:
            node.stop()
    print(f"machine: {os.cpu_count()} cores; disk fsync'd sequential write (dd conv=fdatasync, 256 MiB): {disk:.0f} MiB/s")
    print(f"memory.budget: {args.budget or 'default (192MiB)'}; bramble peak RSS (VmHWM): {node.peak_rss_kib / 1024:.1f} MiB\n")
    print("| case | records/s | MiB/s | % of disk fsync'd write |")
    print("|---|---:|---:|---:|")
    for name, rate, mib_s in rows:
        print(f"| bramble {name} | {rate:,.0f} | {mib_s:.1f} | {100 * mib_s / disk:.0f}% |")
    if args.peer:
        with tempfile.TemporaryDirectory(dir=ROOT) as workdir:
            peer_rows = run_cases(args.peer, args.mib, workdir)
        for name, rate, mib_s in peer_rows:
            print(f"| peer {name} | {rate:,.0f} | {mib_s:.1f} | {100 * mib_s / disk:.0f}% |")


if __name__ == "__main__":
    sys.exit(main())
