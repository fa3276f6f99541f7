#!/usr/bin/env python3
"""A three-node bramble cluster versus a three-server Debian ZooKeeper 3.8 ensemble, in one run
on one machine:

- coordinator write throughput (create, setData) with the same Rust load client
  (benches/zk_load.rs, connections spread over the three members);
- Kafka produce with replication factor 3 and acks=all, 1 KiB records (kcat, librdkafka);
- failover: kill -9 of the quorum leader under kazoo writes until the first write is
  acknowledged again (both), and of a partition leader under confluent-kafka acks=all load
  until the first record is acknowledged again (bramble);
- each node's peak RSS (VmHWM), bramble and every ZooKeeper JVM.

Build first:  cargo build --release --bin bramble --bench zk_load
Run:          .venv/bin/python bench/cluster.py [--target-dir target] [--nodes 20000] [--mib 64]
Prints Markdown tables for BENCHMARKS.md. A shared machine is noisy: compare within a run.
"""
import argparse
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "clients"))
sys.path.insert(0, str(ROOT / "bench"))


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def vm_hwm_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def four_letter(host, port, word):
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(word.encode())
            out = b""
            while chunk := s.recv(4096):
                out += chunk
            return out.decode()
    except OSError:
        return ""


def mode(host, port):
    for line in four_letter(host, port, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line.split(": ", 1)[1]
    return None


class Ensemble:
    """Three ZooKeeper 3.8 servers (QuorumPeerMain) on 127.0.0.21-23, each with its own
    zoo.cfg, dataDir and myid."""

    def __init__(self, workdir):
        from zk_support import ZK_JAR
        self.jar = ZK_JAR
        self.hosts = [f"127.0.0.{20 + i}" for i in (1, 2, 3)]
        self.client_ports = [free_port(h) for h in self.hosts]
        quorum = [(free_port(h), free_port(h)) for h in self.hosts]
        self.dirs = []
        self.procs = [None, None, None]
        for i, host in enumerate(self.hosts):
            d = Path(workdir) / f"zk-{i + 1}"
            (d / "data").mkdir(parents=True)
            (d / "data" / "myid").write_text(f"{i + 1}\n")
            lines = ["tickTime=2000", "initLimit=10", "syncLimit=5", f"dataDir={d / 'data'}",
                     f"clientPort={self.client_ports[i]}", f"clientPortAddress={host}",
                     "admin.enableServer=false", "4lw.commands.whitelist=*", "autopurge.purgeInterval=0"]
            lines += [f"server.{j + 1}={h}:{q[0]}:{q[1]}" for j, (h, q) in enumerate(zip(self.hosts, quorum))]
            (d / "zoo.cfg").write_text("\n".join(lines) + "\n")
            self.dirs.append(d)

    @property
    def connect(self):
        return ",".join(f"{h}:{p}" for h, p in zip(self.hosts, self.client_ports))

    def start_one(self, i):
        d = self.dirs[i]
        java = shutil.which("java") or "/usr/bin/java"
        log = open(d / "zookeeper.log", "ab")
        self.procs[i] = subprocess.Popen(
            [java, "-Dzookeeper.extendedTypesEnabled=true", "-cp", f"/etc/zookeeper/conf:{self.jar}",
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(d / "zoo.cfg")],
            stdout=log, stderr=log)

    def start(self):
        for i in range(3):
            self.start_one(i)
        self.wait_ready()
        return self

    def modes(self):
        return [mode(h, p) if self.procs[i] and self.procs[i].poll() is None else None
                for i, (h, p) in enumerate(zip(self.hosts, self.client_ports))]

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [m for i, m in enumerate(self.modes()) if self.procs[i].poll() is None]
            if "leader" in live and all(m in ("leader", "follower") for m in live):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the ensemble formed no quorum: {self.modes()}")

    def leader(self):
        return self.modes().index("leader")

    def kill(self, i):
        self.procs[i].kill()
        self.procs[i].wait(10)

    def pids(self):
        return [p.pid for p in self.procs if p and p.poll() is None]

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def zk_load(loader, servers, nodes, connections, in_flight):
    out = subprocess.run([loader, "--server", servers, "--nodes", str(nodes), "--connections", str(connections),
                          "--in-flight", str(in_flight)], capture_output=True, text=True, check=True).stdout
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def zk_failover(hosts, kill):
    """kazoo writers (all members' addresses) under load; `kill()` kills the quorum leader;
    seconds from the kill to the first acknowledged write."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException
    acks = []
    stop = threading.Event()
    lock = threading.Lock()
    setup = KazooClient(hosts=hosts, timeout=10)
    setup.start(15)
    setup.ensure_path("/failover")
    setup.stop()

    def writer(k):
        c = KazooClient(hosts=hosts, timeout=10, connection_retry={"max_tries": -1, "delay": 0.02, "max_delay": 0.1})
        c.start(15)
        while not stop.is_set():
            started = time.monotonic()
            try:
                c.create(f"/failover/w{k}-", b"x", sequence=True)
            except KazooException:
                time.sleep(0.02)
                continue
            with lock:
                acks.append((started, time.monotonic()))
        c.stop()
        c.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    killed_at = time.monotonic()
    kill()
    # The first write sent after the kill and acknowledged: one in flight at the kill may
    # have been committed already, and says nothing about the new leader.
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        with lock:
            if any(s > killed_at for s, _ in acks):
                break
        time.sleep(0.01)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    with lock:
        after = [e for s, e in acks if s > killed_at]
    return min(after) - killed_at if after else float("nan")


def kafka_failover(cluster, topic):
    """confluent-kafka acks=all into the partition the quorum leader leads, kill -9 that node:
    seconds from the kill to the first acknowledged record."""
    from confluent_kafka import KafkaException, Producer
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=cluster.zk_hosts, timeout=10)
    zk.start(15)
    quorum_leader = cluster.wait_for_leader().node_id
    states = {}
    for p in range(3):
        path = f"/brokers/topics/{topic}/partitions/{p}/state"
        zk.sync(path)
        states[p] = json.loads(zk.get(path)[0])
    zk.stop()
    part = next((p for p, s in states.items() if s["leader"] == quorum_leader), 0)
    victim = cluster.node(states[part]["leader"])
    both = victim.node_id == quorum_leader
    acks = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": ",".join(n.kafka for n in cluster.nodes), "acks": "all",
                      "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 100})

        def cb(err, msg):
            # Counted from records produced after the kill (their CreateTime, wall clock).
            if err is None and msg.timestamp()[1] / 1000 > killed_wall[0]:
                with lock:
                    acks.append(time.monotonic())

        n = 0
        while not stop.is_set():
            try:
                p.produce(topic, b"x" * 1024, partition=part, callback=cb)
                n += 1
            except (BufferError, KafkaException):
                pass
            p.poll(0.002)
        p.flush(60)

    killed_wall = [float("inf")]
    t = threading.Thread(target=produce)
    t.start()
    time.sleep(3)
    killed_at = time.monotonic()
    killed_wall[0] = time.time()
    victim.kill()
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        with lock:
            if any(x > killed_at for x in acks):
                break
        time.sleep(0.01)
    stop.set()
    t.join(90)
    with lock:
        after = [x for x in acks if x > killed_at]
    return (min(after) - killed_at if after else float("nan")), both, victim


def bench_bramble(a, loader, workdir, kafka_bench):
    os.environ["BRAMBLE_BIN"] = str(Path(a.target_dir).resolve() / "release" / "bramble")
    import conftest
    from confluent_kafka.admin import AdminClient, NewTopic
    conftest.BINARY = Path(os.environ["BRAMBLE_BIN"])
    res = {}
    cluster = conftest.LocalCluster(Path(workdir), 3).start()
    try:
        for n in cluster.nodes:
            conftest.wait_for_port(n.host, n.kafka_port, process=n.process)
        bootstrap = ",".join(n.kafka for n in cluster.nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        deadline = time.monotonic() + 30
        while len(admin.list_topics(timeout=10).brokers) < 3:
            assert time.monotonic() < deadline, "brokers never registered"
            time.sleep(0.2)
        time.sleep(1)
        res["zk"] = zk_load(loader, cluster.zk_hosts, a.nodes, a.connections, a.in_flight)
        admin.create_topics([NewTopic("rf3", num_partitions=3, replication_factor=3)])["rf3"].result(30)
        time.sleep(2)
        count, seconds = kafka_bench.produce(bootstrap, "rf3", 1024, a.mib * 1024 * 1024, "all", workdir)
        res["produce_records_s"] = count / seconds
        res["produce_mib_s"] = count * 1024 / seconds / 2**20
        res["hwm"] = [vm_hwm_mib(n.process.pid) for n in cluster.nodes]

        leader = cluster.wait_for_leader()
        res["zk_failover_s"] = zk_failover(cluster.zk_hosts, leader.kill)
        leader.start()
        cluster.wait_for_leader()
        time.sleep(5)  # the restarted node catches up and rejoins the ISRs
        res["kafka_failover_s"], res["kafka_failover_both"], victim = kafka_failover(cluster, "rf3")
    finally:
        cluster.stop()
    return res


def bench_zookeeper(a, loader, workdir):
    res = {}
    ens = Ensemble(workdir)
    ens.start()
    try:
        time.sleep(1)
        res["zk"] = zk_load(loader, ens.connect, a.nodes, a.connections, a.in_flight)
        res["hwm"] = [vm_hwm_mib(pid) for pid in ens.pids()]
        leader = ens.leader()
        res["zk_failover_s"] = zk_failover(ens.connect, lambda: ens.kill(leader))
    finally:
        ens.stop()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "target"))
    ap.add_argument("--nodes", type=int, default=20_000, help="znodes created, then set, by the load client")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--mib", type=int, default=64, help="MiB of 1 KiB records produced")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # kazoo's reconnect chatter during failovers
    zk_bench = load("bench_zk", ROOT / "bench" / "zk.py")
    kafka_bench = load("bench_kafka", ROOT / "bench" / "kafka.py")
    loader = zk_bench.load_binary(a.target_dir)
    from zk_support import require_real_zookeeper  # noqa: F401 - fails loudly when missing
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "bramble").mkdir()
        (Path(d) / "zk").mkdir()
        b = bench_bramble(a, loader, str(Path(d) / "bramble"), kafka_bench)
        z = bench_zookeeper(a, loader, str(Path(d) / "zk"))
    print(f"| 3 nodes, {a.nodes} znodes, {a.connections} connections x {a.in_flight} in flight | bramble | ZooKeeper 3.8 | ratio |")
    print("|---|---:|---:|---:|")
    for label, key in [("create ops/s", "create_ops_per_s"), ("setData ops/s", "set_ops_per_s")]:
        bv, zv = b["zk"].get(key, 0), z["zk"].get(key, 0)
        print(f"| {label} | {bv:.0f} | {zv:.0f} | {bv / zv if zv else float('nan'):.2f} |")
    print(f"| quorum leader kill -9 to the next acknowledged write (kazoo) | {b['zk_failover_s']:.2f} s "
          f"| {z['zk_failover_s']:.2f} s | |")
    print(f"| peak RSS (VmHWM) per node, MiB | {' / '.join(f'{x:.1f}' for x in b['hwm'])} "
          f"| {' / '.join(f'{x:.1f}' for x in z['hwm'])} | |")
    print()
    print(f"| Kafka on the bramble cluster | |\n|---|---:|\n"
          f"| produce RF 3, acks=all, 1 KiB records, {a.mib} MiB (kcat) | {b['produce_records_s']:.0f} records/s "
          f"({b['produce_mib_s']:.1f} MiB/s) |\n"
          f"| partition leader{' and quorum leader' if b['kafka_failover_both'] else ''} kill -9 to the next "
          f"acks=all record | {b['kafka_failover_s']:.2f} s |")


if __name__ == "__main__":
    main()
