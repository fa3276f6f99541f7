"""Restart and kill -9 of `bramble serve`: the tree and sequence counters survive, every
acknowledged write is there, ephemerals of dead sessions go; snapshots are taken and old
ones purged."""

import threading
import time

from kazoo.client import KazooClient

from zk_support import Bramble
from zkwire import OPEN_ACL, Wire


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_tree_and_sequence_counters_survive_restart(tmp_path):
    b = Bramble(tmp_path).start()
    c = KazooClient(hosts=b.hosts)
    c.start()
    c.create("/durable", b"v")
    first = c.create("/durable/seq-", sequence=True)
    c.set("/durable", b"v2")
    c.stop()
    b.stop()
    b.start()
    c = KazooClient(hosts=b.hosts)
    c.start()
    assert c.get("/durable")[0] == b"v2"
    second = c.create("/durable/seq-", sequence=True)
    assert (first, second) == ("/durable/seq-0000000000", "/durable/seq-0000000001")
    c.stop()
    b.stop()


def test_acknowledged_writes_survive_kill_9_and_dead_sessions_lose_ephemerals(tmp_path):
    b = Bramble(tmp_path).start()
    # Long enough that a slow restart on a loaded machine still finds the session alive (a
    # restored session gets a fresh timeout from the restart, as in ZooKeeper).
    owner = Wire("127.0.0.1", b.port, timeout_ms=4000)
    owner.create("/eph", b"", OPEN_ACL, 1)
    acked = []
    stop = threading.Event()

    def writer(n):
        w = Wire("127.0.0.1", b.port)
        i = 0
        try:
            while not stop.is_set():
                p = w.create(f"/w{n}-", b"x" * 100, OPEN_ACL, 2)
                acked.append(p)
                i += 1
        except (ConnectionError, OSError):
            pass

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    b.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 50
    b.start()
    c = KazooClient(hosts=b.hosts)
    c.start()
    present = set("/" + k for k in c.get_children("/"))
    missing = [p for p in acked if p not in present]
    assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:3]}"
    # The owner of /eph is dead: its session expires after its timeout and the node goes.
    assert c.exists("/eph") is not None
    assert wait_for(lambda: c.exists("/eph") is None, timeout=20)
    # Sequence counters carried on after the crash.
    nxt = c.create("/w0-", sequence=True)
    assert nxt not in present
    c.stop()
    b.stop()


def test_snapshots_are_taken_and_purged(tmp_path):
    b = Bramble(tmp_path, {"snap_count": 50, "autopurge_snap_retain_count": 3, "autopurge_purge_interval": 1}).start()
    w = Wire("127.0.0.1", b.port)
    w.create("/s")
    for i in range(400):
        w.create(f"/s/n{i}", b"d")
    w.close()
    b.stop()
    store = b.data_dir / "bramble-zk"
    snaps = sorted(p.name for p in store.iterdir() if p.name.startswith("snapshot."))
    assert len(snaps) >= 5
    b.start()  # start-up purge keeps the newest 3
    snaps = sorted(p.name for p in store.iterdir() if p.name.startswith("snapshot."))
    assert len(snaps) == 3
    w = Wire("127.0.0.1", b.port)
    assert len(w.children("/s")) == 400
    w.close()
    b.kill9()
    b.start()
    w = Wire("127.0.0.1", b.port)
    assert len(w.children("/s")) == 400
    w.close()
    b.stop()


def test_myid_is_read_from_the_data_dir(tmp_path):
    b = Bramble(tmp_path)
    b.data_dir.mkdir(parents=True)
    (b.data_dir / "myid").write_text("7\n")
    b.start()
    w = Wire("127.0.0.1", b.port)
    assert w.session_id >> 56 == 7  # ZooKeeper puts the server id in the session id's top byte
    w.close()
    b.stop()
