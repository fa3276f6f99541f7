#!/usr/bin/env python3
"""Throughput against the memory budget: one bramble node per budget (32, 64, 128, 256 MiB),
each holding the same znodes (written with kazoo) while kcat (librdkafka) produces and
consumes 1 KiB records, with the node's peak RSS (VmHWM) beside each; then, in the same run,
Debian's ZooKeeper 3.8 holding the same znodes, and its RSS.

    .venv/bin/python bench/budget.py [--binary target/release/bramble] [--mib 64]
        [--budgets 32,64,128,256] [--znodes 5000] [--znode-bytes 100]

Prints a Markdown table for BENCHMARKS.md. Timings on a shared machine are noisy.
"""
import argparse
import os
import pathlib
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from kafka import Node, consume, produce  # noqa: E402
from zk_support import RealZooKeeper, require_real_zookeeper  # noqa: E402


def load_znodes(hosts, count, size):
    """Creates /bench/n00000.. with `size`-byte values; returns how many were accepted."""
    zk = KazooClient(hosts=hosts, timeout=30)
    zk.start(timeout=30)
    zk.ensure_path("/bench")
    value = b"v" * size
    accepted = 0
    batch = 500
    for start in range(0, count, batch):
        pending = [zk.create_async(f"/bench/n{i:05d}", value) for i in range(start, min(count, start + batch))]
        for p in pending:
            try:
                p.get(timeout=60)
                accepted += 1
            except QuotaExceededError:
                pass
    zk.stop()
    zk.close()
    return accepted


def vm_rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_budget(binary, budget_mib, mib, znodes, znode_bytes):
    with tempfile.TemporaryDirectory(dir=ROOT) as workdir:
        node = Node(binary, workdir, budget=f"{budget_mib}MiB")
        try:
            held = load_znodes(f"127.0.0.1:{node.zk_port}", znodes, znode_bytes)
            rss_znodes = vm_rss_kib(node.process.pid)
            admin = AdminClient({"bootstrap.servers": node.address})
            rows = {}
            for acks in ("1", "all"):
                topic = f"budget-{acks}-{int(time.time() * 1000) % 100000}"
                for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
                    f.result(60)
                count, elapsed = produce(node.address, topic, 1024, mib << 20, "-1" if acks == "all" else acks, workdir)
                rows[f"acks={acks}"] = count / elapsed
                if acks == "all":
                    size, elapsed = consume(node.address, topic, count)
                    rows["consume"] = count / elapsed
        finally:
            node.stop()
        log = (pathlib.Path(workdir) / "log").read_text(errors="replace")
        episodes = log.count("memory pool exhausted")
        return rows, held, rss_znodes, node.peak_rss_kib, episodes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "bramble"))
    parser.add_argument("--mib", type=int, default=64, help="MiB of 1 KiB records produced per case")
    parser.add_argument("--budgets", default="32,64,128,256", help="memory.budget values in MiB")
    parser.add_argument("--znodes", type=int, default=5000)
    parser.add_argument("--znode-bytes", type=int, default=100)
    args = parser.parse_args()
    require_real_zookeeper()
    results = []
    for budget in [int(b) for b in args.budgets.split(",")]:
        results.append((budget, *run_budget(args.binary, budget, args.mib, args.znodes, args.znode_bytes)))
    zk_rows = []
    for heap in (None, "64m"):
        with tempfile.TemporaryDirectory() as d:
            zk = RealZooKeeper(d, heap=heap).start()
            try:
                idle = zk.rss_kib()
                held = load_znodes(zk.hosts, args.znodes, args.znode_bytes)
                time.sleep(1)
                zk_rows.append((heap, held, idle, zk.rss_kib()))
            finally:
                zk.stop()
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}; {args.mib} MiB of 1 KiB records per case "
          f"(kcat, 3 partitions); {args.znodes} znodes of {args.znode_bytes} B written first\n")
    print("| memory.budget | produce acks=1 (records/s) | produce acks=all (records/s) | consume (records/s) "
          "| znodes held | RSS with znodes (MiB) | peak RSS, VmHWM (MiB) | pool-exhausted episodes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for budget, rows, held, rss_z, peak, episodes in results:
        print(f"| {budget} MiB | {rows['acks=1']:,.0f} | {rows['acks=all']:,.0f} | {rows['consume']:,.0f} "
              f"| {held} | {rss_z / 1024:.1f} | {peak / 1024:.1f} | {episodes} |")
    print()
    print("| ZooKeeper 3.8 | znodes held | RSS idle (MiB) | RSS with znodes (MiB) |")
    print("|---|---:|---:|---:|")
    for heap, held, idle, rss in zk_rows:
        print(f"| {'-Xmx' + heap if heap else 'Debian defaults'} | {held} | {idle / 1024:.1f} | {rss / 1024:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
