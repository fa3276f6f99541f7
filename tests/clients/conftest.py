"""Shared fixtures: a real `bramble serve` process on free loopback ports.

Every real-client test talks to the daemon exactly as a user would: a process started from
the built binary, with its own config file and data directory.
"""
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

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


def admin_keys(admin_config: str) -> str:
    """The node's [admin] keys for a test: the test's own, plus a disk threshold of 100% unless the
    test sets one. The health state is about the data directory's disk, and a test's data lives
    on whatever disk the machine running the suite has (CI's is 90% full), which would otherwise
    turn every node "degraded" for reasons that have nothing to do with the test."""
    if "disk_usage_degraded_percent" in admin_config:
        return admin_config
    return f"{admin_config}\ndisk_usage_degraded_percent = 100"


class Bramble:
    """One bramble node: start, stop (SIGTERM), kill (SIGKILL), restart."""

    # The network namespace the process runs in (`ip netns exec`); None: the test's own.
    netns = None

    def __init__(self, workdir: pathlib.Path, extra_config: str = "", host="127.0.0.1", sections: str = "",
                 admin_config: str = ""):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: build with `cargo build` first")
        self.workdir = workdir
        self.host = host
        # A node inside a network namespace (NetnsLab) binds an address the test's own
        # namespace does not have: its ports are picked on loopback (any free number will do there).
        port_host = host if self.netns is None else "127.0.0.1"
        self.kafka_port = free_port(port_host)
        self.zk_port = free_port(port_host)
        # The admin HTTP listener defaults to 8080: give every node its own port.
        self.admin_port = free_port(port_host)
        self.log_dir = workdir / "kafka-logs"
        self.zk_dir = workdir / "zookeeper"
        self.config_path = workdir / "bramble.toml"
        self.extra_config = extra_config  # keys appended to [broker]
        self.sections = sections  # whole TOML sections appended after [broker] ([led], [memory], ...)
        self.admin_config = admin_config  # keys appended to [admin]
        # Extra environment for the process (e.g. NOTIFY_SOCKET).
        self.env = {}
        self.process = None
        self.stderr_path = workdir / "bramble.log"
        self.write_config()

    @property
    def kafka(self):
        return f"{self.host}:{self.kafka_port}"

    @property
    def zk(self):
        return f"{self.host}:{self.zk_port}"

    @property
    def admin(self):
        return f"{self.host}:{self.admin_port}"

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
            f"{self.extra_config}\n\n"
            "[admin]\n"
            f'listen = "{self.admin}"\n'
            f"{admin_keys(self.admin_config)}\n\n"
            f"{self.sections}\n"
        )

    def write_config(self):
        self.config_path.write_text(self.config_text())

    def spawn(self):
        """Start the process without waiting for it to listen."""
        assert self.process is None or self.process.poll() is not None
        self.stderr = open(self.stderr_path, "ab")
        env = dict(os.environ, BRAMBLE_LOG=os.environ.get("BRAMBLE_LOG", "info"), NO_COLOR="1", **self.env)
        # `ip netns exec` execs bramble in place, so the pid (and kill) is bramble's own.
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            prefix + [str(BINARY), "serve", "--config", str(self.config_path)],
            stdout=self.stderr, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
        )

    def start(self):
        self.spawn()
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

    def make(extra_config="", name="node", sections="", admin_config=""):
        workdir = tmp_path / f"{name}{len(nodes)}"
        workdir.mkdir()
        node = Bramble(workdir, extra_config, sections=sections, admin_config=admin_config)
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


class ClusterNode(Bramble):
    """One member of a local cluster: its own loopback address (127.0.0.1N), a `[cluster]`
    section listing every member, and the node id N."""

    def __init__(self, workdir, node_id, host, peer_port, servers, extra_config="", netns=None):
        self.node_id = node_id
        self.peer_port = peer_port
        self.servers = servers
        self.netns = netns
        # Extra `[broker]` keys (a TOML table cannot be opened twice, so not in `sections`).
        self.broker_config = ""
        super().__init__(workdir, extra_config, host=host)

    def config_text(self):
        servers = ", ".join(f'{i} = "{addr}"' for i, addr in sorted(self.servers.items()))
        return (
            "[node]\n"
            f"id = {self.node_id}\n\n"
            "[coordinator]\n"
            f'data_dir = "{self.zk_dir}"\n'
            f'listen = "{self.zk}"\n\n'
            "[broker]\n"
            f'listeners = ["{self.kafka}"]\n'
            f'log_dirs = ["{self.log_dir}"]\n'
            f"{self.broker_config}\n\n"
            "[cluster]\n"
            f'listen = "{self.host}:{self.peer_port}"\n'
            f"servers = {{ {servers} }}\n"
            f"{self.extra_config}\n\n"
            "[admin]\n"
            f'listen = "{self.admin}"\n'
            f"{admin_keys(self.admin_config)}\n\n"
            f"{self.sections}\n"
        )

    def four_letter(self, word, timeout=2.0):
        with socket.create_connection((self.host, self.zk_port), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode()
                out += chunk

    def mode(self):
        """leader / follower / looking, from `srvr`; None if the node does not answer."""
        try:
            for line in self.four_letter("srvr").splitlines():
                if line.startswith("Mode: "):
                    return line.split(": ", 1)[1]
        except OSError:
            return None
        return None


class LocalCluster:
    """N bramble processes on 127.0.0.11, .12, ... forming one quorum; with `lab` (a NetnsLab),
    node N runs in the lab's namespace N on the lab's address N instead."""

    def __init__(self, tmp_path, size=3, extra_config="", lab=None):
        if lab is None:
            hosts = [f"127.0.0.{10 + i}" for i in range(1, size + 1)]
            spaces = [None] * size
            peer_ports = [free_port(h) for h in hosts]
        else:
            assert len(lab.hosts) == size, f"the lab has {len(lab.hosts)} namespaces, not {size}"
            hosts, spaces = lab.hosts, lab.namespaces
            peer_ports = [free_port() for _ in hosts]
        servers = {i + 1: f"{h}:{p}" for i, (h, p) in enumerate(zip(hosts, peer_ports))}
        self.nodes = []
        for i, (h, p) in enumerate(zip(hosts, peer_ports)):
            workdir = tmp_path / f"node-{i + 1}"
            workdir.mkdir()
            self.nodes.append(ClusterNode(workdir, i + 1, h, p, servers, extra_config, netns=spaces[i]))

    def start(self):
        # Start every node before waiting on any: the first needs a majority to elect.
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            wait_for_port(n.host, n.zk_port, process=n.process)
        self.wait_for_leader()
        return self

    def node(self, node_id):
        return self.nodes[node_id - 1]

    @property
    def zk_hosts(self):
        return ",".join(n.zk for n in self.nodes)

    def leader(self):
        for n in self.nodes:
            if n.alive() and n.mode() == "leader":
                return n
        return None

    def wait_for_leader(self, timeout=20.0):
        """The leader, once every live node agrees one exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            live = [n for n in self.nodes if n.alive()]
            if leader and all(n.mode() in ("leader", "follower") for n in live):
                return leader
            time.sleep(0.05)
        logs = "\n".join(f"--- node {n.node_id}\n{n.log_tail()}" for n in self.nodes)
        raise TimeoutError(f"no quorum leader after {timeout}s\n{logs}")

    def wait_for_brokers(self, count=None, chroot="", timeout=30.0):
        """Waits until every live node's own tree holds `count` (default: every node's) broker
        registrations. A Metadata answer is not enough: the answering broker lists itself before
        its registration has committed, and the controller places replicas only on registered
        brokers, so a topic created on that answer alone can find too few."""
        from kazoo.client import KazooClient

        count = len(self.nodes) if count is None else count
        live = [n for n in self.nodes if n.alive()]
        clients = []
        try:
            for n in live:
                zk = KazooClient(hosts=n.zk, timeout=10)
                zk.start(timeout=15)
                clients.append(zk)
            eventually(f"{count} brokers registered on every node",
                       lambda: all(len(zk.get_children(f"{chroot}/brokers/ids")) >= count for zk in clients),
                       timeout=timeout)
        finally:
            for zk in clients:
                zk.stop()
                zk.close()

    def stop(self):
        for n in self.nodes:
            if n.alive():
                n.stop()


@pytest.fixture
def bramble_cluster(tmp_path):
    """Make a local cluster (not started); every node is stopped at the end of the test."""
    clusters = []

    def make(size=3, extra_config="", lab=None):
        c = LocalCluster(tmp_path, size, extra_config, lab)
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.stop()
class NetnsLab:
    """Network namespaces for a cluster test: namespace N holds node N on 10.213.S.(10+N), joined by
    a veth pair to one bridge made for the run in the test's namespace, which has 10.213.S.1 and so
    reaches every node (clients run in the test's namespace). Nothing but the interfaces and
    namespaces made here is touched; `cleanup` removes them all.

    `cut(N)` isolates node N from its peers with blackhole routes on both sides (the network
    between the Pis fails while clients still reach each of them); `heal(N)` removes them.
    `cut(N, silent=True)` instead points each side's neighbour entry for the other at a MAC
    address no interface has: packets leave and vanish, as when a cable between switches is
    pulled (no error reaches the sender; connections hang until their timeouts), where a
    blackhole route makes a new connect fail at once."""

    def __init__(self, size=3):
        require_tool("ip")
        self.run = f"{os.getpid() % 0x10000:04x}{secrets.token_hex(2)}"
        self.bridge = f"bbr{self.run}"
        self.namespaces = []
        self.veths = []
        self.subnet = self._free_subnet()
        self.hosts = [f"{self.subnet}.{10 + i}" for i in range(1, size + 1)]
        self.cuts = set()
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
            self._ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            for i, host in enumerate(self.hosts, start=1):
                ns = f"bramble-{self.run}-{i}"
                self._ip("netns", "add", ns)
                self.namespaces.append(ns)
                veth = f"bv{self.run}n{i}"
                self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self.veths.append(veth)
                self._ip("link", "set", veth, "master", self.bridge)
                self._ip("link", "set", veth, "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
                self._ip("-n", ns, "addr", "add", f"{host}/24", "dev", "eth0")
                self._ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            self.cleanup()
            raise

    @staticmethod
    def _ip(*args, check=True):
        r = subprocess.run(["ip", *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def _free_subnet(self):
        """A 10.213.S.0/24 that no address or route on this machine uses."""
        used = self._ip("-4", "addr") + self._ip("-4", "route")
        for s in sorted(range(1, 255), key=lambda _: secrets.randbits(16)):
            if f"10.213.{s}." not in used:
                return f"10.213.{s}"
        raise RuntimeError("no free 10.213.x.0/24 subnet")

    def _routes(self, action, node):
        """Blackhole routes between node `node` (1-based) and every other node, both ways."""
        me = self.namespaces[node - 1]
        for i, ns in enumerate(self.namespaces, start=1):
            if i == node:
                continue
            self._ip("-n", me, "route", action, "blackhole", f"{self.hosts[i - 1]}/32")
            self._ip("-n", ns, "route", action, "blackhole", f"{self.hosts[node - 1]}/32")

    # A locally administered unicast MAC that no interface here has.
    NOWHERE = "02:00:5e:10:21:30"

    def _neighbours(self, action, node):
        """Neighbour entries between node `node` and every other node, both ways: `replace`
        points them at NOWHERE, `del` lets ARP find the real ones again."""
        me = self.namespaces[node - 1]
        for i, ns in enumerate(self.namespaces, start=1):
            if i == node:
                continue
            for space, peer in ((me, self.hosts[i - 1]), (ns, self.hosts[node - 1])):
                extra = ["lladdr", self.NOWHERE, "nud", "permanent"] if action == "replace" else []
                self._ip("-n", space, "neigh", action, peer, *extra, "dev", "eth0", check=action == "replace")

    def cut(self, node, silent=False):
        if silent:
            self._neighbours("replace", node)
        else:
            self._routes("add", node)
        self.cuts.add((node, silent))

    def heal(self, node):
        for cut in [c for c in self.cuts if c[0] == node]:
            if cut[1]:
                self._neighbours("del", node)
            else:
                self._routes("del", node)
            self.cuts.discard(cut)

    def cleanup(self):
        for ns in self.namespaces:
            # Only processes this test started run in these namespaces.
            for pid in self._ip("netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for veth in self.veths:
            self._ip("link", "del", veth, check=False)
        for ns in self.namespaces:
            self._ip("netns", "del", ns, check=False)
        self._ip("link", "del", self.bridge, check=False)
        self.namespaces, self.veths = [], []


@pytest.fixture
def netns_lab():
    """Make a NetnsLab; its namespaces, veths and bridge are removed at the end, pass or fail.
    Request it before `bramble_cluster`, so the nodes stop before their namespaces go."""
    labs = []

    def make(size=3):
        lab = NetnsLab(size)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.cleanup()


def eventually(what, pred, timeout=30.0, interval=0.2):
    """Polls `pred` until it returns something true (an exception counts as not yet) and
    returns that; fails with `what` and the last value or error at the deadline."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = pred()
        except Exception as e:  # noqa: BLE001 - retried until the deadline, then reported
            value = e
        if value and not isinstance(value, Exception):
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} never happened (last: {value!r})")


def metric(node, name, labels):
    """A labelled value from the node's `/metrics` (0 when the series is absent)."""
    with urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name}\{{{labels}\}} (\d+)$", text, re.M)
    return int(match.group(1)) if match else 0


# --- slow tests (emulation) -------------------------------------------------------------------
# `--slow` (tests/run-all.sh passes it when BRAMBLE_SLOW_TESTS=1) runs tests marked
# `@pytest.mark.slow`, such as booting an image under qemu-system-aarch64. Without it they are
# skipped with a reason: the one place in this suite where a skip is allowed.


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run slow emulation tests (BRAMBLE_SLOW_TESTS=1 in tests/run-all.sh)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow emulation test, runs only with --slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow emulation test: set BRAMBLE_SLOW_TESTS=1 (pytest --slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
