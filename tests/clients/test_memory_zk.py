"""The memory budget seen by ZooKeeper clients: request frames wait for the requests pool
(backpressure, nothing refused), watches count against the znode pool and are refused with
QuotaExceeded when it is full (kazoo raises QuotaExceededError and carries on), and a TLS
connection holds its buffers' cost in the pool while it is open."""
import re
import socket
import ssl
import struct
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import QuotaExceededError

from tls_support import Pki
from zk_support import four_letter
from zkwire import Wire
from conftest import metric

# 64 MiB in a debug build: a requests pool of 7.2 MiB and a znode pool of 4.8 MiB.
BUDGET = '[memory]\nbudget = "64MiB"\n'


def eventually(what, check, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(0.2)


def total_watches(node):
    text = four_letter(node.zk_port, "wchs")
    return int(re.search(r"Total watches:(\d+)", text).group(1))


def kazoo(node):
    client = KazooClient(hosts=node.zk, timeout=15)
    client.start(timeout=15)
    return client


def test_large_znode_writes_wait_for_the_requests_pool(bramble_factory):
    """Eight kazoo clients each keep four 500 KB setData in flight: 32 frames of twice
    500 KB cannot all fit the 7 MiB requests pool, so frames wait for it; every write
    still succeeds and the last value of each node is one of those written."""
    node = bramble_factory("", sections=BUDGET).start()
    setup = kazoo(node)
    for n in range(4):
        setup.create(f"/big{n}", b"")
    clients = [kazoo(node) for _ in range(8)]
    errors = []

    def writer(index, client):
        for round_ in range(6):
            pending = [client.set_async(f"/big{(index + k) % 4}", bytes([index]) * 500_000)
                       for k in range(4)]
            for p in pending:
                try:
                    p.get(timeout=60)
                except Exception as error:  # noqa: BLE001 - reported below
                    errors.append(repr(error))

    threads = [threading.Thread(target=writer, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors[:5]
    for n in range(4):
        data, stat = setup.get(f"/big{n}")
        assert len(data) == 500_000 and len(set(data)) == 1 and data[0] < 8
        assert stat.version == 48, "every setData applied once"
    assert eventually("the requests pool ran dry and made frames wait", lambda: metric(
        node, "bramble_memory_pool_exhausted_total", 'pool="kafka_requests"') > 0)
    eventually("the frames' bytes went back", lambda: metric(
        node, "bramble_memory_pool_used_bytes", 'pool="kafka_requests"') == 0)
    for c in clients + [setup]:
        c.stop()


def test_watches_past_the_znode_pool_are_refused_with_quota_exceeded(bramble_factory):
    node = bramble_factory("", sections=BUDGET).start()
    zk = kazoo(node)
    # Fill the znode pool with data, halving the size down to 1 KiB, so little room is left.
    size, n = 1_000_000, 0
    while size >= 1024:
        try:
            zk.create(f"/fill{n}", bytes(size))
            n += 1
        except QuotaExceededError:
            size //= 2
    # /metrics shows the pool nearly full, as the coordinator measures it.
    limit = metric(node, "bramble_memory_pool_limit_bytes", 'pool="znodes"')
    eventually("the znode pool's use in /metrics",
               lambda: metric(node, "bramble_memory_pool_used_bytes", 'pool="znodes"') > limit * 0.9)
    fired = []
    watched = []
    with_error = None
    for i in range(1000):
        try:
            zk.exists(f"/watch/{i:04}", watch=fired.append)
            watched.append(i)
        except QuotaExceededError as error:
            with_error = error
            break
    assert with_error is not None, "the znode pool took 1000 more watches"
    assert watched, "some watches fit before the pool was full"
    assert zk.connected, "the refusal left the session alone"
    # Reads without a watch are still served; the refused watch was not set.
    assert zk.exists("/fill0") is not None
    before = total_watches(node)
    assert before == len(watched)
    # Room comes back when data goes: the watch that was refused now fits.
    zk.delete("/fill0")
    zk.exists(f"/watch/{len(watched):04}", watch=fired.append)
    assert total_watches(node) == before + 1
    # The watches are real: they fire, and a fired watch gives its room back.
    zk.ensure_path("/watch")
    zk.create("/watch/0000")
    eventually("the watch fired", lambda: fired)
    assert total_watches(node) == before
    # A connection that drops takes its watches with it.
    wire = Wire("127.0.0.1", node.zk_port)
    wire.exists("/watch/dropped", watch=True)
    assert total_watches(node) == before + 1
    wire.drop()
    eventually("the dropped connection's watch went", lambda: total_watches(node) == before)
    zk.stop()
    eventually("the closed session's watches went", lambda: total_watches(node) == 0)


def test_a_tls_connection_holds_its_buffers_in_the_requests_pool(bramble_factory, tmp_path):
    pki = Pki(tmp_path)
    secure_port = None
    node = bramble_factory("", sections=pki.tls_section(pki.node()) + BUDGET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        secure_port = s.getsockname()[1]
    text = node.config_text()
    node.config_text = lambda: text.replace(
        "[coordinator]\n", f'[coordinator]\nsecure_listen = "127.0.0.1:{secure_port}"\n', 1)
    node.write_config()
    node.start()
    used = lambda: metric(node, "bramble_memory_pool_used_bytes", 'pool="kafka_requests"')  # noqa: E731
    eventually("the pool is idle", lambda: used() == 0)
    context = ssl.create_default_context(cafile=str(pki.ca))
    connections = []
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", secure_port), timeout=10)
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
        # A ZooKeeper four-letter word needs no session: ruok answers imok and closes,
        # so keep these open with a connect request's first bytes only.
        tls.sendall(struct.pack(">i", 44))
        connections.append(tls)
    # Three TLS connections: 3 x 48 KiB, plus the pending connect frames (twice 44 bytes,
    # a 1 KiB unit each).
    eventually("each TLS connection counts 48 KiB", lambda: used() == 3 * 48 * 1024 + 3 * 1024)
    for c in connections:
        c.close()
    eventually("closing gives it back", lambda: used() == 0)
    # A plain connection costs nothing while idle.
    plain = socket.create_connection(("127.0.0.1", node.zk_port), timeout=10)
    time.sleep(1)
    assert used() == 0
    plain.close()
