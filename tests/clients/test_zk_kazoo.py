"""kazoo against a real `bramble serve`: node types, versions, watches, multi, sessions,
the recipes under several clients, chroot, auth, four-letter words and limits."""

import socket
import struct
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError, NoNodeError,
                              NotEmptyError, NoChildrenForEphemeralsError, RolledBackError,
                              ConnectionLoss)
from kazoo.security import make_acl, make_digest_acl

from zk_support import Bramble, four_letter
from zkwire import OPEN_ACL, Wire, ZkError


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    b = Bramble(tmp_path_factory.mktemp("bramble")).start()
    yield b
    b.stop()


@pytest.fixture
def zk(server):
    clients = []

    def make(chroot="", **kw):
        c = KazooClient(hosts=server.hosts + chroot, **kw)
        c.start(timeout=10)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_every_node_type(zk, server):
    c = zk()
    c.create("/types", b"p")
    assert c.get("/types")[0] == b"p"
    e = c.create("/types/eph", b"e", ephemeral=True)
    assert c.exists(e).ephemeralOwner == c.client_id[0]
    s1 = c.create("/types/seq-", sequence=True)
    s2 = c.create("/types/seq-", sequence=True)
    es = c.create("/types/eseq-", ephemeral=True, sequence=True)
    assert (s1, s2, es) == ("/types/seq-0000000001", "/types/seq-0000000002", "/types/eseq-0000000003")
    with pytest.raises(NoChildrenForEphemeralsError):
        c.create("/types/eph/child")
    w = Wire("127.0.0.1", server.port)
    path, stat = w.create("/types/box", b"", OPEN_ACL, 4, op="createContainer")
    assert stat["ephemeralOwner"] == 0
    w.create("/types/box/x")
    w.delete("/types/box/x")
    assert wait_for(lambda: c.exists("/types/box") is None), "empty container not reaped"
    path, stat = w.create("/types/ttl", b"", OPEN_ACL, 5, op="createTTL", ttl=300)
    assert wait_for(lambda: c.exists("/types/ttl") is None), "TTL node not reaped"
    with pytest.raises(ZkError) as err:
        w.create("/types/bad", b"", OPEN_ACL, 5, op="createTTL", ttl=0)
    assert err.value.code == -8
    w.close()
    c.stop()
    c2 = zk()
    assert c2.get_children("/types") == sorted(["seq-0000000001", "seq-0000000002"]) or \
        sorted(c2.get_children("/types")) == ["seq-0000000001", "seq-0000000002"]


def test_versions_and_compare_and_set(zk):
    c = zk()
    c.create("/cas", b"0")
    _, stat = c.get("/cas")
    c.set("/cas", b"1", version=stat.version)
    with pytest.raises(BadVersionError):
        c.set("/cas", b"2", version=stat.version)
    with pytest.raises(BadVersionError):
        c.delete("/cas", version=5)
    c.create("/cas/child")
    with pytest.raises(NotEmptyError):
        c.delete("/cas")
    assert c.get("/cas")[1].version == 1
    c.delete("/cas", recursive=True)
    assert c.exists("/cas") is None


def test_data_child_and_exists_watches_fire_once(zk):
    a, b = zk(), zk()
    a.create("/w")
    data, kids, exist = [], [], []
    a.get("/w", watch=data.append)
    a.get_children("/w", watch=kids.append)
    a.exists("/w/new", watch=exist.append)
    b.set("/w", b"1")
    b.create("/w/new")
    b.set("/w", b"2")
    assert wait_for(lambda: data and kids and exist)
    time.sleep(0.2)
    assert [e.type for e in data] == ["CHANGED"]
    assert [e.type for e in kids] == ["CHILD"]
    assert [(e.type, e.path) for e in exist] == [("CREATED", "/w/new")]


def test_datawatch_and_childrenwatch_recipes_follow_changes(zk):
    a, b = zk(), zk()
    a.ensure_path("/dw")
    seen, kids = [], []
    a.DataWatch("/dw", lambda d, s: seen.append(d))
    a.ChildrenWatch("/dw", lambda c: kids.append(sorted(c)))
    for i in range(3):
        b.set("/dw", str(i).encode())
        b.create(f"/dw/c{i}")
    assert wait_for(lambda: seen[-1:] == [b"2"] and kids[-1:] == [["c0", "c1", "c2"]])


def test_notification_arrives_before_the_reply_of_the_write(server):
    w = Wire("127.0.0.1", server.port)
    w.create("/order")
    w.get("/order", watch=True)
    w.set("/order", b"x")
    # The event was read off the socket before the setData reply.
    assert w.events == [(3, "/order")]
    w.close()


def test_persistent_and_recursive_watches(server):
    a, b = Wire("127.0.0.1", server.port), Wire("127.0.0.1", server.port)
    b.create("/pw")
    a.add_watch("/pw", 0)
    a.add_watch("/pw", 1) if False else None
    r = Wire("127.0.0.1", server.port)
    r.add_watch("/pw", 1)
    b.create("/pw/x")
    b.set("/pw", b"1")
    b.set("/pw/x", b"1")
    b.create("/pw/x/y")
    b.delete("/pw/x/y")
    for w in (a, r):
        w.ping()
    assert a.events == [(4, "/pw"), (3, "/pw")]
    assert r.events == [(1, "/pw/x"), (3, "/pw"), (3, "/pw/x"), (1, "/pw/x/y"), (2, "/pw/x/y")]
    a.remove_watches("/pw", 3)
    with pytest.raises(ZkError) as err:
        a.remove_watches("/pw", 3)
    assert err.value.code == -121
    for w in (a, b, r):
        w.close()


def test_set_watches_after_reconnect_fires_missed_events(server):
    a, b = Wire("127.0.0.1", server.port), Wire("127.0.0.1", server.port)
    b.create("/sw")
    a.get("/sw", watch=True)
    seen = a.last_zxid
    a.drop()
    b.set("/sw", b"changed while away")
    a2 = Wire("127.0.0.1", server.port, session_id=a.session_id, passwd=a.passwd, last_zxid=seen)
    assert a2.session_id == a.session_id
    a2.set_watches(seen, data=["/sw"], exist=["/sw-missing"], child=["/sw"])
    assert a2.events == [(3, "/sw")]
    b.create("/sw-missing")
    b.create("/sw/kid")
    a2.ping()
    assert a2.events == [(3, "/sw"), (1, "/sw-missing"), (4, "/sw")]
    a2.close()
    b.close()


def test_multi_is_atomic(zk):
    c = zk()
    c.create("/multi")
    t = c.transaction()
    t.create("/multi/a")
    t.set_data("/multi", b"x")
    t.create("/multi")  # fails
    results = t.commit()
    assert isinstance(results[0], RolledBackError) and isinstance(results[2], NodeExistsError)
    assert c.exists("/multi/a") is None and c.get("/multi")[0] == b""
    t = c.transaction()
    t.create("/multi/a")
    t.check("/multi/a", 0)
    t.create("/multi/a/b")
    assert t.commit() == ["/multi/a", True, "/multi/a/b"]


def test_session_expiry_removes_ephemerals_and_fires_watches(zk, server):
    watcher = zk()
    w = Wire("127.0.0.1", server.port, timeout_ms=500)
    w.create("/expiring", b"", OPEN_ACL, 1)
    gone = []
    watcher.exists("/expiring", watch=gone.append)
    w.drop()  # no closeSession, no pings: the session must expire
    assert wait_for(lambda: gone, timeout=5)
    assert gone[0].type == "DELETED"
    again = Wire("127.0.0.1", server.port, session_id=w.session_id, passwd=w.passwd)
    assert again.timeout == 0  # expired
    again.drop()


def test_reconnect_keeps_the_session_and_its_ephemerals(server):
    w = Wire("127.0.0.1", server.port, timeout_ms=4000)
    w.create("/mine", b"", OPEN_ACL, 1)
    w.drop()
    time.sleep(0.3)
    back = Wire("127.0.0.1", server.port, session_id=w.session_id, passwd=w.passwd, last_zxid=w.last_zxid)
    assert back.session_id == w.session_id and back.timeout > 0
    assert back.exists("/mine")["ephemeralOwner"] == w.session_id
    bad = Wire("127.0.0.1", server.port, session_id=w.session_id, passwd=b"x" * 16)
    assert bad.timeout == 0
    back.close()


def test_a_client_ahead_of_the_server_is_refused(server):
    with pytest.raises((ConnectionError, OSError)):
        Wire("127.0.0.1", server.port, last_zxid=1 << 40)


def test_lock_recipe_under_contention(zk):
    clients = [zk() for _ in range(3)]
    counter = {"inside": 0, "max": 0, "done": 0}
    guard = threading.Lock()

    def work(c):
        for _ in range(5):
            with c.Lock("/recipes/lock", "me"):
                with guard:
                    counter["inside"] += 1
                    counter["max"] = max(counter["max"], counter["inside"])
                time.sleep(0.005)
                with guard:
                    counter["inside"] -= 1
        with guard:
            counter["done"] += 1

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counter == {"inside": 0, "max": 1, "done": 3}


def test_election_recipe_picks_one_leader_and_fails_over(zk):
    a, b = zk(), zk()
    leaders = []
    stop_a = threading.Event()

    def lead(name, stop):
        leaders.append(name)
        stop.wait(10)

    ta = threading.Thread(target=a.Election("/recipes/election", "a").run, args=(lead, "a", stop_a))
    ta.start()
    assert wait_for(lambda: leaders == ["a"])
    stop_b = threading.Event()
    tb = threading.Thread(target=b.Election("/recipes/election", "b").run, args=(lead, "b", stop_b))
    tb.start()
    time.sleep(0.3)
    assert leaders == ["a"]
    stop_a.set()
    assert wait_for(lambda: leaders == ["a", "b"])
    stop_b.set()
    ta.join(5)
    tb.join(5)


def test_counter_recipe_counts_every_increment(zk):
    clients = [zk() for _ in range(3)]

    def bump(c):
        counter = c.Counter("/recipes/counter")
        for _ in range(20):
            counter += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert clients[0].Counter("/recipes/counter").value == 60


def test_barrier_and_double_barrier(zk):
    a, b = zk(), zk()
    barrier = a.Barrier("/recipes/barrier")
    barrier.create()
    passed = []
    t = threading.Thread(target=lambda: passed.append(b.Barrier("/recipes/barrier").wait(10)))
    t.start()
    time.sleep(0.2)
    assert passed == []
    barrier.remove()
    t.join(10)
    assert passed == [True]

    entered = []

    def member(c):
        db = c.DoubleBarrier("/recipes/double", 2)
        db.enter()
        entered.append(1)
        db.leave()

    threads = [threading.Thread(target=member, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(entered) == 2


def test_queue_recipes_deliver_each_item_once(zk):
    producer, c1, c2 = zk(), zk(), zk()
    q = producer.Queue("/recipes/queue")
    for i in range(20):
        q.put(str(i).encode())
    got = []
    for c in (c1, c2) * 10:
        got.append(c.Queue("/recipes/queue").get())
    assert sorted(int(x) for x in got) == list(range(20))
    lq = producer.LockingQueue("/recipes/lqueue")
    lq.put(b"job", priority=1)
    consumer = c1.LockingQueue("/recipes/lqueue")
    assert consumer.get(5) == b"job"
    assert consumer.consume()
    assert len(consumer) == 0


def test_chroot_in_the_connect_string_just_works(zk):
    root = zk()
    root.ensure_path("/kafka-broker")
    c = zk("/kafka-broker")
    c.create("/brokers/ids/1", b"{}", ephemeral=True, makepath=True)
    assert root.exists("/kafka-broker/brokers/ids/1") is not None
    assert c.get_children("/brokers/ids") == ["1"]
    t = c.transaction()
    t.create("/brokers/topics")
    assert t.commit() == ["/brokers/topics"]


def test_digest_auth_and_acls_are_enforced(zk):
    owner = zk()
    owner.add_auth("digest", "alice:secret")
    owner.create("/secret", b"s", acl=[make_acl("auth", "", all=True)])
    owner.create("/public-read", b"r", acl=[make_digest_acl("alice", "secret", all=True), make_acl("world", "anyone", read=True)])
    stranger = zk()
    with pytest.raises(NoAuthError):
        stranger.get("/secret")
    assert stranger.get("/public-read")[0] == b"r"
    with pytest.raises(NoAuthError):
        stranger.set("/public-read", b"x")
    friend = zk(auth_data=[("digest", "alice:secret")])
    assert friend.get("/secret")[0] == b"s"
    acls, _ = owner.get_acls("/secret")
    assert acls[0].id.scheme == "digest" and acls[0].id.id.startswith("alice:")


def test_who_am_i_and_server_side_counts(server):
    w = Wire("127.0.0.1", server.port)
    assert ("ip", "127.0.0.1") in w.whoami()
    assert w.auth("digest", b"bob:pw") == 0
    assert ("digest", "bob") in w.whoami()
    w.create("/cnt")
    w.create("/cnt/a")
    w.create("/cnt/a/b")
    w.create("/cnt/e", b"", OPEN_ACL, 1)
    assert w.all_children_number("/cnt") == 3
    assert w.ephemerals("/cnt") == ["/cnt/e"]
    assert w.multi_read([("get", "/cnt/a"), ("children", "/cnt"), ("get", "/nope")])[1] == ("children", ["a", "e"])
    w.close()


def test_four_letter_words(server):
    assert four_letter(server.port, "ruok") == "imok"
    assert four_letter(server.port, "isro") == "rw"
    srvr = four_letter(server.port, "srvr")
    assert "Zookeeper version:" in srvr and "Mode: standalone" in srvr and "Node count:" in srvr
    assert "Clients:" in four_letter(server.port, "stat")
    mntr = dict(line.split("\t", 1) for line in four_letter(server.port, "mntr").strip().splitlines())
    for key in ("zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency", "zk_packets_received",
                "zk_packets_sent", "zk_num_alive_connections", "zk_outstanding_requests", "zk_server_state",
                "zk_znode_count", "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size"):
        assert key in mntr, key
    assert mntr["zk_server_state"] == "standalone"
    assert f"clientPort={server.port}" in four_letter(server.port, "conf")
    assert "Environment:" in four_letter(server.port, "envi")
    assert "Total watches:" in four_letter(server.port, "wchs")
    assert "datadir_size:" in four_letter(server.port, "dirs")
    four_letter(server.port, "cons")


def test_four_letter_allow_list(tmp_path):
    b = Bramble(tmp_path, {"four_letter_words": ["ruok"]}).start()
    try:
        assert four_letter(b.port, "ruok") == "imok"
        assert "not in the whitelist" in four_letter(b.port, "mntr")
    finally:
        b.stop()


def test_limits_close_only_the_offending_connection(tmp_path):
    b = Bramble(tmp_path, {"jute_maxbuffer": 4096, "max_client_cnxns": 5, "max_watches": 3}).start()
    try:
        keep = Wire("127.0.0.1", b.port)
        # Oversized request: that connection is closed, the server lives on.
        big = Wire("127.0.0.1", b.port)
        with pytest.raises((ConnectionError, OSError)):
            big.create("/big", b"x" * 5000)
        # Malformed request: same.
        bad = Wire("127.0.0.1", b.port)
        bad.sock.sendall(struct.pack(">i", 6) + b"\x00\x00\x00\x01\x00\x00")
        with pytest.raises((ConnectionError, OSError)):
            bad._recv()
        keep.create("/still-alive")
        # Watches beyond the cap are refused with QuotaExceeded (not THROTTLEDOP, -127,
        # which kazoo cannot decode), not a crash.
        for p in ("/w1", "/w2", "/w3"):
            keep.exists(p, watch=True)
        with pytest.raises(ZkError) as err:
            keep.exists("/w4", watch=True)
        assert err.value.code == -125
        # max_client_cnxns per address: the extra connection is closed at once.
        extra = []
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(6):
                extra.append(Wire("127.0.0.1", b.port))
        for e in extra:
            e.drop()
        keep.close()
        assert four_letter(b.port, "ruok") == "imok"
    finally:
        b.stop()
