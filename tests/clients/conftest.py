"""Shared fixtures: a real `bramble serve` process on free loopback ports.

Every real-client test talks to the daemon exactly as a user would: a process started from
the built binary, with its own config file and data directory.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("BRAMBLE_BIN", ROOT / "target" / "debug" / "bramble"))


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout=15.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"bramble exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Bramble:
    """One bramble node: start, stop (SIGTERM), kill (SIGKILL), restart."""

    def __init__(self, workdir: pathlib.Path, extra_config: str = "", host="127.0.0.1", sections: str = ""):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: build with `cargo build` first")
        self.workdir = workdir
        self.host = host
        self.kafka_port = free_port(host)
        self.zk_port = free_port(host)
        self.log_dir = workdir / "kafka-logs"
        self.zk_dir = workdir / "zookeeper"
        self.config_path = workdir / "bramble.toml"
        self.extra_config = extra_config
        # Whole top-level sections (`[mqtt]`, ...) written after `[broker]`.
        self.sections = sections
        self.process = None
        self.stderr_path = workdir / "bramble.log"
        self.write_config()

    @property
    def kafka(self):
        return f"{self.host}:{self.kafka_port}"

    @property
    def zk(self):
        return f"{self.host}:{self.zk_port}"

    def config_text(self):
        return (
            # The ZooKeeper listener is always on: keep it off the default 2181.
            "[coordinator]\n"
            f'data_dir = "{self.zk_dir}"\n'
            f'listen = "{self.zk}"\n\n'
            "[node]\nid = 1\n\n"
            "[broker]\n"
            f'listeners = ["{self.kafka}"]\n'
            f'log_dirs = ["{self.log_dir}"]\n'
            f"{self.extra_config}\n"
            f"{self.sections}\n"
        )

    def write_config(self):
        self.config_path.write_text(self.config_text())

    def start(self):
        assert self.process is None or self.process.poll() is not None
        self.stderr = open(self.stderr_path, "ab")
        env = dict(os.environ, BRAMBLE_LOG=os.environ.get("BRAMBLE_LOG", "info"), NO_COLOR="1")
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(self.config_path)],
            stdout=self.stderr, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
        )
        wait_for_port(self.host, self.kafka_port, process=self.process)
        return self

    def stop(self, timeout=20):
        """Clean shutdown with SIGTERM; asserts the process exits 0."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            code = self.process.wait(timeout=timeout)
            assert code == 0, f"bramble exited with {code}; log:\n{self.log_tail()}"
        self.process = None

    def kill(self):
        """Power-cut style stop: SIGKILL."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture
def bramble_factory(tmp_path):
    """Make nodes with custom config; every node is stopped at the end of the test."""
    nodes = []

    def make(extra_config="", name="node", sections=""):
        workdir = tmp_path / f"{name}{len(nodes)}"
        workdir.mkdir()
        node = Bramble(workdir, extra_config, sections=sections)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.alive():
            node.stop()


@pytest.fixture
def bramble(bramble_factory):
    """A started single node with default settings."""
    return bramble_factory().start()


def require_tool(name):
    """Real-client tests fail loudly when their client is missing; they never skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run the README's test command, which installs it")
    return path
