"""Linearizability of one ZooKeeper register (read after sync, write, CAS via setData with
a version) from several kazoo clients across a quorum leader kill, checked with a small
Wing-Gong search (memoized on the set of linearized operations and the register state)."""
import random
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException

INF = float("inf")


class Op:
    def __init__(self, client, kind, arg, call):
        self.client, self.kind, self.arg, self.call = client, kind, arg, call
        self.ret = INF  # INF: no answer (connection loss): it may or may not have happened
        self.result = None

    def __repr__(self):
        return f"{self.client}:{self.kind}{self.arg}->{self.result}@[{self.call:.3f},{self.ret:.3f}]"


def step(state, op):
    """The register model: state is (value, version). Returns the new state, or None if
    the op's observed result is impossible from `state`."""
    value, version = state
    if op.kind == "read":
        if op.ret == INF:
            return state
        return state if op.result == (value, version) else None
    if op.kind == "write":
        if op.ret != INF and op.result != version + 1:
            return None
        return (op.arg, version + 1)
    # cas: (expected version, new value)
    expected, new = op.arg
    if op.ret == INF:
        return (new, version + 1) if expected == version else state
    if op.result == "ok":
        return (new, version + 1) if expected == version else None
    return state if expected != version else None


def linearizable(ops, initial):
    """Wing & Gong's search: linearize some minimal pending op whose effect the model
    accepts, backtracking; unanswered ops may also never take effect."""
    ops = sorted(ops, key=lambda o: o.call)
    n = len(ops)
    seen = set()

    def search(done, state):
        if (done, state) in seen:
            return False
        seen.add((done, state))
        pending = [i for i in range(n) if not done >> i & 1]
        if all(ops[i].ret == INF for i in pending):
            return True
        horizon = min(ops[i].ret for i in pending)
        for i in pending:
            if ops[i].call > horizon:
                break
            nxt = step(state, ops[i])
            if nxt is not None and search(done | 1 << i, nxt):
                return True
        return False

    return search(0, initial)


def test_checker_finds_a_stale_read():
    a = Op(0, "write", b"1", 0.0)
    a.ret, a.result = 1.0, 1
    r = Op(1, "read", None, 2.0)
    r.ret, r.result = 3.0, (b"0", 0)
    assert not linearizable([a, r], (b"0", 0))
    r.result = (b"1", 1)
    assert linearizable([a, r], (b"0", 0))


def test_register_is_linearizable_across_a_leader_kill(bramble_cluster):
    cluster = bramble_cluster(3).start()
    setup = KazooClient(hosts=cluster.zk_hosts)
    setup.start(timeout=15)
    setup.create("/reg", b"init")
    setup.stop()
    history = []
    lock = threading.Lock()
    t0 = time.monotonic()
    ops_per_client = 30
    kill_after = threading.Event()

    def run(k):
        rnd = random.Random(k)
        c = KazooClient(hosts=cluster.zk_hosts, timeout=10, connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.2})
        c.start(timeout=15)
        last_version = 0
        for n in range(ops_per_client):
            if n == ops_per_client // 3:
                kill_after.set()
            kind = rnd.choice(["read", "write", "cas"])
            value = f"c{k}-{n}".encode()
            arg = value if kind == "write" else ((last_version, value) if kind == "cas" else None)
            op = Op(k, kind, arg, time.monotonic() - t0)
            try:
                if kind == "read":
                    c.sync("/reg")
                    data, stat = c.get("/reg")
                    op.result = (data, stat.version)
                    last_version = stat.version
                elif kind == "write":
                    op.result = c.set("/reg", value).version
                    last_version = op.result
                else:
                    try:
                        c.set("/reg", value, version=last_version)
                        op.result = "ok"
                        last_version += 1
                    except BadVersionError:
                        op.result = "fail"
                op.ret = time.monotonic() - t0
            except KazooException:
                # Unknown outcome: the op stays open forever in the history.
                time.sleep(0.1)
            with lock:
                history.append(op)
        c.stop()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    kill_after.wait(timeout=60)
    cluster.leader().kill()
    for t in threads:
        t.join(timeout=120)
    answered = [o for o in history if o.ret != INF]
    print(f"{len(history)} ops, {len(history) - len(answered)} without an answer")
    assert len(answered) >= len(history) * 2 // 3
    assert linearizable(history, (b"init", 0)), f"not linearizable: {sorted(history, key=lambda o: o.call)}"
