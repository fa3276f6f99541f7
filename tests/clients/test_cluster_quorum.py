"""The quorum with real processes on 127.0.0.11-13 and real kazoo clients: election,
replication, leader failover under writes, sessions that move between nodes."""
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from zkwire import Wire


def client(hosts, **kw):
    c = KazooClient(hosts=hosts, timeout=kw.pop("timeout", 10), **kw)
    c.start(timeout=15)
    return c


def test_three_nodes_elect_a_leader_and_replicate_znodes(bramble_cluster):
    cluster = bramble_cluster(3).start()
    modes = sorted(n.mode() for n in cluster.nodes)
    assert modes == ["follower", "follower", "leader"]
    writer = client(cluster.node(1).zk)
    writer.create("/replicated", b"from node 1")
    writer.stop()
    for node_id in (2, 3):
        reader = client(cluster.node(node_id).zk)
        # sync: this node has applied everything the leader had committed.
        reader.sync("/replicated")
        assert reader.get("/replicated")[0] == b"from node 1"
        reader.stop()


def test_a_follower_forwards_writes_and_reads_its_own_writes(bramble_cluster):
    cluster = bramble_cluster(3).start()
    follower = next(n for n in cluster.nodes if n.mode() == "follower")
    c = client(follower.zk)
    for i in range(20):
        c.create(f"/f{i}", str(i).encode())
        # Read-your-writes on the follower without sync.
        assert c.get(f"/f{i}")[0] == str(i).encode()
    c.stop()


def test_acked_znodes_survive_leader_kill(bramble_cluster):
    cluster = bramble_cluster(3).start()
    setup = client(cluster.zk_hosts)
    setup.ensure_path("/load")
    setup.stop()
    acked = []
    ack_times = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(k):
        c = client(cluster.zk_hosts, connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.2})
        n = 0
        while not stop.is_set():
            path = f"/load/c{k}-{n:05d}"
            n += 1
            try:
                c.create(path, b"x")
            except KazooException:
                # Connection loss: the outcome is unknown, so it is not counted.
                time.sleep(0.05)
                continue
            with lock:
                acked.append(path)
                ack_times.append(time.monotonic())
        c.stop()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    leader = cluster.leader()
    leader.kill()
    killed_at = time.monotonic()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    after = [t for t in ack_times if t > killed_at]
    assert after, "no write was acknowledged after the leader was killed"
    failover = min(after) - killed_at
    print(f"failover: {failover:.2f}s, acknowledged writes: {len(acked)}")
    assert failover < 3.0, f"failover took {failover:.2f}s"
    survivors = [n for n in cluster.nodes if n.alive()]
    for node in survivors:
        c = client(node.zk)
        c.sync("/load")
        present = set(c.get_children("/load"))
        missing = [p for p in acked if p.rsplit("/", 1)[1] not in present]
        assert not missing, f"node {node.node_id} lost {len(missing)} acknowledged znodes"
        c.stop()
    # The killed node comes back and catches up.
    leader.start()
    wait_for_zk(leader)
    c = client(leader.zk)
    c.sync("/load")
    present = set(c.get_children("/load"))
    assert all(p.rsplit("/", 1)[1] in present for p in acked)
    c.stop()


def wait_for_zk(node, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.mode() in ("leader", "follower"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"node {node.node_id} did not rejoin:\n{node.log_tail()}")


def test_a_session_and_its_ephemeral_move_to_another_node(bramble_cluster):
    cluster = bramble_cluster(3).start()
    hosts = ",".join(cluster.node(i).zk for i in (1, 2, 3))
    c = client(hosts, randomize_hosts=False)
    session_id = c.client_id[0]
    c.create("/owned", b"e", ephemeral=True)
    assert c._connection._socket.getpeername()[0] == "127.0.0.11"
    cluster.node(1).kill()
    # kazoo reconnects to node 2 or 3 with the same session.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            c.sync("/owned")
            if c.connected:
                break
        except KazooException:
            time.sleep(0.1)
    assert c.client_id[0] == session_id
    assert c.exists("/owned") is not None
    assert c.exists("/owned").ephemeralOwner == session_id
    observer = client(cluster.node(3).zk)
    assert observer.exists("/owned") is not None
    c.stop()
    # kazoo does not wait for closeSession's answer, so the close is not ordered before
    # the next request: poll briefly.
    deadline = time.monotonic() + 5
    while observer.exists("/owned") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        observer.sync("/owned")
    assert observer.exists("/owned") is None
    observer.stop()


def test_an_expired_session_loses_its_ephemerals_on_every_node(bramble_cluster):
    cluster = bramble_cluster(3).start()
    node = cluster.node(2)
    w = Wire(node.host, node.zk_port, timeout_ms=4000)
    w.create("/gone-soon", b"", flags=1)
    w.drop()  # no closeSession: only expiry can end it
    for n in cluster.nodes:
        c = client(n.zk)
        c.sync("/gone-soon")
        assert c.exists("/gone-soon") is not None
        c.stop()
    time.sleep(7)
    for n in cluster.nodes:
        c = client(n.zk)
        c.sync("/gone-soon")
        assert c.exists("/gone-soon") is None, f"node {n.node_id} still has the ephemeral"
        c.stop()


def test_a_client_that_saw_a_newer_zxid_is_refused(bramble_cluster):
    cluster = bramble_cluster(3).start()
    c = client(cluster.node(1).zk)
    zxid = c.create("/z", b"", include_data=True)[1].czxid
    c.stop()
    node = cluster.node(2)
    try:
        Wire(node.host, node.zk_port, last_zxid=zxid + (1 << 40))
        refused = False
    except Exception:
        refused = True
    assert refused
    # A client whose zxid this node has applied is welcome (sync: node 2 may learn of the
    # commit only at the leader's next heartbeat).
    c2 = client(node.zk)
    c2.sync("/z")
    c2.stop()
    w = Wire(node.host, node.zk_port, last_zxid=zxid)
    w.close()


def test_an_unknown_peer_preamble_is_closed(bramble_cluster):
    import socket
    cluster = bramble_cluster(3).start()
    node = cluster.node(1)
    with socket.create_connection((node.host, node.peer_port), timeout=5) as s:
        s.sendall(b"HTTP/1.1")
        try:
            closed = s.recv(16) == b""
        except ConnectionResetError:
            closed = True  # closed with our bytes unread
        assert closed
