#!/usr/bin/env python3
"""bramble versus Debian's ZooKeeper 3.8 on the same machine with the same Rust load client
(benches/zk_load.rs): create / getData / setData / delete throughput with many requests in
flight, single-request latency p50/p99, and each server's RSS idle and with 100k znodes.

Build first:  cargo build --release --bin bramble --bench zk_load
Run:          python3 bench/zk.py [--nodes 100000] [--target-dir target]
Prints a Markdown table for BENCHMARKS.md."""

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "clients"))
from zk_support import Bramble, RealZooKeeper  # noqa: E402


def load_binary(target):
    cands = [p for p in glob.glob(f"{target}/release/deps/zk_load-*") if os.access(p, os.X_OK) and not p.endswith(".d")]
    if not cands:
        sys.exit("zk_load not built: cargo build --release --bench zk_load")
    return max(cands, key=os.path.getmtime)


def run(server, loader, nodes, connections, in_flight):
    idle = server.rss_kib()
    peak = [0]
    proc = subprocess.Popen([loader, "--server", server.hosts, "--nodes", str(nodes), "--connections",
                             str(connections), "--in-flight", str(in_flight)], stdout=subprocess.PIPE, text=True)
    out = {}
    for line in proc.stdout:
        k, v = line.split()
        out[k] = float(v)
        if k == "ready_for_rss":
            time.sleep(0.5)
            peak[0] = server.rss_kib()
    proc.wait()
    out["rss_idle_mib"] = idle / 1024
    out["rss_100k_mib"] = peak[0] / 1024
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    a = ap.parse_args()
    os.environ["BRAMBLE_BIN"] = f"{a.target_dir}/release/bramble"
    loader = load_binary(a.target_dir)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, make in [
            ("bramble", lambda: Bramble(Path(d) / "bramble", {"tick_time_ms": 2000})),
            ("zookeeper 3.8", lambda: RealZooKeeper(Path(d) / "zk")),
            ("zookeeper 3.8 -Xmx64m", lambda: RealZooKeeper(Path(d) / "zk64", heap="64m")),
        ]:
            s = make().start()
            time.sleep(1.0)
            try:
                results[name] = run(s, loader, a.nodes, a.connections, a.in_flight)
            finally:
                s.stop()
    rows = [("create ops/s", "create_ops_per_s"), ("getData ops/s", "get_ops_per_s"),
            ("setData ops/s", "set_ops_per_s"), ("delete ops/s", "delete_ops_per_s"),
            ("getData latency p50 (µs)", "get_latency_p50_us"), ("getData latency p99 (µs)", "get_latency_p99_us"),
            ("setData latency p50 (µs)", "set_latency_p50_us"), ("setData latency p99 (µs)", "set_latency_p99_us"),
            ("RSS idle (MiB)", "rss_idle_mib"), (f"RSS with {a.nodes} znodes (MiB)", "rss_100k_mib")]
    names = list(results)
    print(f"| {a.nodes} znodes, {a.connections} connections x {a.in_flight} in flight, 100-byte values | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, key in rows:
        print(f"| {label} | " + " | ".join(f"{results[n].get(key, 0):.0f}" if "rss" not in key else f"{results[n].get(key, 0):.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
