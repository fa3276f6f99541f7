"""Helpers for the ZooKeeper-protocol tests: start a real `bramble serve` or Debian's
ZooKeeper 3.8 on free loopback ports with their own temporary data dirs, and talk
four-letter words. Every process started here is stopped by its own PID."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


def bramble_bin():
    if os.environ.get("BRAMBLE_BIN"):
        return os.environ["BRAMBLE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    return str(Path(target) / "debug" / "bramble")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0, what="server"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def four_letter(port, word, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


class Bramble:
    """A `bramble serve` process with its own data dir and ports."""

    def __init__(self, workdir, coordinator=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.kafka_port = free_port()
        self.data_dir = self.workdir / "zookeeper"
        self.coordinator = {"tick_time_ms": 200, "container_check_interval_ms": 200}
        self.coordinator.update(coordinator or {})
        self.proc = None

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def write_config(self):
        lines = [
            "[broker]",
            f'listeners = ["127.0.0.1:{self.kafka_port}"]',
            f'log_dirs = ["{self.workdir / "kafka-logs"}"]',
            "[coordinator]",
            f'data_dir = "{self.data_dir}"',
            f'listen = "127.0.0.1:{self.port}"',
        ]
        for k, v in self.coordinator.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, (int, float)):
                lines.append(f"{k} = {v}")
            elif isinstance(v, list):
                lines.append(f"{k} = [" + ", ".join(f'"{x}"' for x in v) + "]")
            else:
                lines.append(f'{k} = "{v}"')
        path = self.workdir / "bramble.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self):
        cfg = self.write_config()
        self.log = open(self.workdir / "bramble.log", "ab")
        env = dict(os.environ, BRAMBLE_LOG=os.environ.get("BRAMBLE_LOG", "info"))
        self.proc = subprocess.Popen([bramble_bin(), "serve", "--config", str(cfg)],
                                     stdout=self.log, stderr=self.log, env=env)
        wait_port(self.port, self.proc, what="bramble")
        # Same start-up probe as RealZooKeeper (one session opened and closed), so both
        # servers have used the same zxids when a test starts.
        from zkwire import Wire
        Wire("127.0.0.1", self.port).close()
        return self

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
        if getattr(self, "log", None):
            self.log.close()

    def rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


class RealZooKeeper:
    """Debian's ZooKeeper 3.8, standalone, on a free loopback port with its own dataDir."""

    def __init__(self, workdir, heap=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.heap = heap
        self.proc = None

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text("\n".join([
            "tickTime=2000",
            f"dataDir={data}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "autopurge.purgeInterval=0",
        ]) + "\n")
        java = shutil.which("java") or "/usr/bin/java"
        cmd = [java, "-Dzookeeper.extendedTypesEnabled=true"]
        if self.heap:
            cmd.append(f"-Xmx{self.heap}")
        cmd += ["-cp", f"/etc/zookeeper/conf:{ZK_JAR}",
                "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)]
        self.log = open(self.workdir / "zookeeper.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc, timeout=60, what="zookeeper")
        deadline = time.time() + 30
        while time.time() < deadline:
            # ruok answers before sessions are accepted: wait for a real session.
            try:
                from zkwire import Wire
                Wire("127.0.0.1", self.port).close()
                return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("zookeeper never accepted a session")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()

    def rss_kib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def have_real_zookeeper():
    return os.path.exists(ZK_JAR) and shutil.which("java") is not None


def require_real_zookeeper():
    """Tests that drive Debian's ZooKeeper fail loudly when it is missing; they never skip."""
    import pytest

    if not (have_real_zookeeper() and os.path.exists(ZKCLI)):
        pytest.fail("Debian's zookeeper package (and Java) is not installed: run tests/run-all.sh, which installs it")
