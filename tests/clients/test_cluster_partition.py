"""A network partition with real processes: three nodes, each in its own network namespace
(conftest's NetnsLab: veth pairs to one bridge, clients in the test's namespace reach every
node). The quorum leader, which also leads a Kafka partition, is cut off from its two peers
while clients still reach it. The isolated node must stop acknowledging writes (kazoo through
it, confluent-kafka acks=all to the partition it led), the majority must elect a new quorum
leader and partition leader and keep serving clients that were given all three addresses, and
after healing the isolated node must catch up: the same znode tree and the same records in the
same order on every replica."""
import json
import struct
import threading
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from conftest import wait_for_port, eventually as wait_for

TOPIC = "split"
PARTITIONS = 3


def zk(hosts, **kw):
    c = KazooClient(hosts=hosts, timeout=kw.pop("timeout", 10), **kw)
    c.start(timeout=15)
    return c


def states(client):
    out = {}
    for p in range(PARTITIONS):
        path = f"/brokers/topics/{TOPIC}/partitions/{p}/state"
        client.sync(path)
        out[p] = json.loads(client.get(path)[0])
    return out


def tree(node):
    """Every znode path and its data as one node has it (after sync)."""
    c = zk(node.zk, connection_retry={"max_tries": 3})
    try:
        c.sync("/")
        out = {}

        def walk(path):
            try:
                data, _ = c.get(path)
                children = c.get_children(path)
            except NoNodeError:
                return
            out[path] = data
            for ch in children:
                walk(f"{path.rstrip('/')}/{ch}")

        walk("/")
        return out
    finally:
        c.stop()
        c.close()


def varint(buf, pos):
    """A zigzag varint (Kafka's record fields): (value, next position)."""
    shift = raw = 0
    while True:
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos


def read_log(node, partition):
    """One replica's copy of a partition, read from its segment files (Kafka's v2 record
    batches): [(offset, leader epoch, value)] for every data record, in file order."""
    out = []
    for seg in sorted((node.log_dir / f"{TOPIC}-{partition}").glob("*.log")):
        buf = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(buf):
            base, length = struct.unpack_from(">qi", buf, pos)
            if length <= 0 or pos + 12 + length > len(buf):
                break
            epoch, magic = struct.unpack_from(">ib", buf, pos + 12)
            attributes, = struct.unpack_from(">h", buf, pos + 21)
            count, = struct.unpack_from(">i", buf, pos + 57)
            assert magic == 2 and attributes & 0x07 == 0, f"{seg}: unexpected batch at {pos}"
            rpos = pos + 61
            for _ in range(count):
                rlen, rpos = varint(buf, rpos)
                nxt = rpos + rlen
                rpos += 1  # attributes
                _, rpos = varint(buf, rpos)  # timestamp delta
                delta, rpos = varint(buf, rpos)
                klen, rpos = varint(buf, rpos)
                rpos += max(klen, 0)
                vlen, rpos = varint(buf, rpos)
                if not attributes & 0x20:  # control batches carry no data
                    out.append((base + delta, epoch, bytes(buf[rpos:rpos + vlen])))
                rpos = nxt
            pos += 12 + length
    return out


# "blackhole": routes that drop the victim's traffic (a new connect fails at once);
# "silent": its neighbour entries point nowhere, so packets vanish with no error, as when the
# cable between switches is pulled, and every connection hangs until its own timeout.
@pytest.mark.parametrize("silent", [False, True], ids=["blackhole", "silent"])
def test_isolated_node_stops_writes_majority_continues_and_logs_agree(netns_lab, bramble_cluster, silent):
    lab = netns_lab(3)
    cluster = bramble_cluster(3, lab=lab).start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    everyone = ",".join(n.kafka for n in cluster.nodes)
    admin = AdminClient({"bootstrap.servers": everyone})
    wait_for("3 brokers", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    cluster.wait_for_brokers()
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])[TOPIC].result(20)

    watcher = zk(cluster.zk_hosts)
    wait_for("full ISRs", lambda: all(len(s["isr"]) == 3 for s in states(watcher).values()))
    victim = cluster.wait_for_leader()
    before = states(watcher)
    led = [p for p, s in before.items() if s["leader"] == victim.node_id]
    assert led, f"node {victim.node_id} leads no partition: {before}"
    part = led[0]

    # Records and znodes before the cut.
    watcher.ensure_path("/split")
    for i in range(10):
        watcher.create(f"/split/before-{i}", b"b")
    acked = {p: [] for p in range(PARTITIONS)}
    ack_times = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce():
        p = Producer({
            "bootstrap.servers": everyone,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
            "retry.backoff.ms": 100,
            "max.in.flight.requests.per.connection": 1,
        })

        def cb(err, msg):
            if err is None:
                with lock:
                    acked[msg.partition()].append(msg.value())
                    ack_times.append((msg.partition(), time.monotonic()))

        n = 0
        while not stop.is_set():
            try:
                p.produce(TOPIC, f"m{n:06d}".encode(), partition=n % PARTITIONS, callback=cb)
                n += 1
            except (BufferError, KafkaException):
                pass
            p.poll(0.005)
        assert p.flush(60) == 0, "records still unacknowledged a minute after the load stopped"

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        check_partition(cluster, lab, watcher, victim, part, before, acked, ack_times, lock, stop, producer,
                        silent)
    finally:
        stop.set()


def check_partition(cluster, lab, watcher, victim, part, before, acked, ack_times, lock, stop, producer,
                    silent):
    wait_for("records acknowledged on every partition", lambda: all(acked[p] for p in acked), timeout=20)

    # A client that knows only the victim, and one given all three addresses.
    lonely = zk(victim.zk)
    lonely.create("/split/lonely-before", b"x")
    # The other starts on the victim and must move, keeping its session.
    others = [n for n in cluster.nodes if n is not victim]
    mover = zk(",".join([victim.zk] + [n.zk for n in others]), randomize_hosts=False)
    assert mover._connection._socket.getpeername()[0] == victim.host
    mover_session = mover.client_id[0]

    lab.cut(victim.node_id, silent=silent)
    cut_at = time.monotonic()
    majority = others

    # The majority elects a new quorum leader.
    new_leader = wait_for("a new quorum leader in the majority",
                          lambda: next((n for n in majority if n.mode() == "leader"), None), timeout=15, interval=0.05)
    elected_s = time.monotonic() - cut_at

    # A write through the isolated node fails: it stands down once it has known no quorum
    # leader for its broker session timeout, and closes its clients (connection loss).
    pending = lonely.create_async("/split/through-victim", b"lost?")
    pending.wait(10)
    assert pending.ready(), "a write through the isolated node neither failed nor succeeded in 10 s"
    assert not pending.successful(), "the isolated node acknowledged a write"
    print(f"partition: write through the isolated node failed with {pending.exception!r}")
    assert victim.mode() == "looking"

    # The majority keeps serving: a new partition leader for the victim's partition, in the
    # ISR of the surviving replicas, and writes from clients given all three addresses.
    survivors = zk(",".join(n.zk for n in majority))
    moved = wait_for("the victim's partition led elsewhere",
                     lambda: (lambda s: s if s["leader"] not in (victim.node_id, -1) else None)(states(survivors)[part]),
                     timeout=20)
    assert moved["leader_epoch"] > before[part]["leader_epoch"]
    assert victim.node_id not in moved["isr"]
    for i in range(10):
        mover.retry(mover.create, f"/split/during-{i}", b"d")
    assert mover._connection._socket.getpeername()[0] != victim.host, "the client stayed on the isolated node"
    assert mover.client_id[0] == mover_session, "the client that moved lost its session"
    wait_for("acks=all records on the victim's partition after the cut",
             lambda: any(p == part and t > cut_at + 0.5 for p, t in ack_times), timeout=30)
    with lock:
        first_after = min(t for p, t in ack_times if p == part and t > cut_at) - cut_at
    print(f"partition: quorum leader elected in {elected_s:.2f} s, first acks=all record on the "
          f"isolated node's partition {first_after:.2f} s after the cut")

    # Heal; the isolated node rejoins as a follower and catches up.
    lab.heal(victim.node_id)
    healed_at = time.monotonic()
    wait_for("the healed node back in every ISR",
             lambda: all(victim.node_id in s["isr"] for s in states(survivors).values()), timeout=40)
    time.sleep(1)
    stop.set()
    producer.join(90)
    assert not producer.is_alive()
    print(f"healed node back in every ISR {time.monotonic() - healed_at:.2f} s after healing")

    # The write the isolated node failed never appears, and its client, back on it, reads the
    # majority's writes.
    assert survivors.exists("/split/through-victim") is None
    lonely.retry(lonely.sync, "/split")
    assert lonely.retry(lonely.exists, "/split/during-9") is not None
    for c in (lonely, mover, watcher, survivors):
        c.stop()
        c.close()

    # Same znode tree on every node.
    trees = [tree(n) for n in cluster.nodes]
    for n, t in zip(cluster.nodes[1:], trees[1:]):
        assert t == trees[0], f"node {n.node_id}'s tree differs from node 1's: " \
                              f"{sorted(set(t) ^ set(trees[0]))[:10]}"
    assert all(f"/split/during-{i}" in trees[0] for i in range(10))
    assert all(f"/split/before-{i}" in trees[0] for i in range(10))

    # Same records in the same order on every replica, with every acknowledged one: each
    # node's own segment files, read once the nodes have stopped cleanly.
    cluster.stop()
    for p in range(PARTITIONS):
        logs = [read_log(n, p) for n in cluster.nodes]
        for n, log in zip(cluster.nodes[1:], logs[1:]):
            assert log == logs[0], f"partition {p}: node {n.node_id} has {len(log)} records, node 1 {len(logs[0])}"
        assert len({v for _, _, v in logs[0]}) == len(logs[0]), f"partition {p}: a record appears twice"
        values = [v for _, _, v in logs[0]]
        positions = {v: i for i, v in enumerate(values)}
        missing = [v for v in acked[p] if v not in positions]
        assert not missing, f"partition {p}: {len(missing)} acknowledged records lost, e.g. {missing[:3]}"
        order = [positions[v] for v in acked[p]]
        assert order == sorted(order), f"partition {p}: acknowledged records out of order"
