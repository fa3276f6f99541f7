"""Consumer groups with confluent-kafka (librdkafka) against a real bramble: partitions split
between members and rebalanced as members join and leave, committed offsets resumed after a
consumer restart and after a broker restart, and a prompt first join."""
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

FAST = {
    # Short timers so rebalances take a second or two, not the defaults' tens of seconds.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 300,
}


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(15)


def produce(bootstrap, topic, values, partitions=None):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        kwargs = {} if partitions is None else {"partition": i % partitions}
        producer.produce(topic, value=value.encode(), **kwargs)
    assert producer.flush(30) == 0


class Member(threading.Thread):
    """A group member polling in its own thread and recording its assignment."""

    def __init__(self, bootstrap, group, topic, name, assignor="range"):
        super().__init__(daemon=True)
        self.name = name
        self.topic = topic
        self.partitions = set()
        self.assigned_at = None
        self.rebalances = 0
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                                  "auto.offset.reset": "earliest", **FAST,
                                  "partition.assignment.strategy": assignor})

    def on_assign(self, consumer, partitions):
        self.rebalances += 1
        if self.assigned_at is None and partitions:
            self.assigned_at = time.monotonic()

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign)
        while not self.stop_event.is_set():
            self.consumer.poll(0.1)
            # The current assignment, whether the assignor is eager or incremental.
            current = {p.partition for p in self.consumer.assignment()}
            with self.lock:
                self.partitions = current
        self.consumer.close()  # sends LeaveGroup

    def assignment(self):
        with self.lock:
            return set(self.partitions)

    def leave(self):
        self.stop_event.set()
        self.join(20)


def wait_for_split(members, partitions, sizes, timeout=40):
    """Waits until the members' assignments are disjoint, cover every partition and have the
    given sizes; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m.assignment() for m in members]
        union = set().union(*got)
        if union == set(range(partitions)) and sum(len(a) for a in got) == partitions \
                and sorted(len(a) for a in got) == sorted(sizes):
            return got
        time.sleep(0.1)
    raise AssertionError(f"assignments never settled: {[m.assignment() for m in members]}")


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_members_split_partitions_and_rebalance_on_join_and_leave(bramble, assignor):
    create_topic(bramble.kafka, "six", 6)
    group = "split-" + uuid.uuid4().hex[:6]
    a = Member(bramble.kafka, group, "six", "a", assignor)
    b = Member(bramble.kafka, group, "six", "b", assignor)
    a.start()
    b.start()
    first = wait_for_split([a, b], 6, [3, 3])
    assert first[0].isdisjoint(first[1])

    c = Member(bramble.kafka, group, "six", "c", assignor)
    c.start()
    started = time.monotonic()
    wait_for_split([a, b, c], 6, [2, 2, 2])
    print(f"\n{assignor}: rebalance after a third member joined: {time.monotonic() - started:.2f} s")

    started = time.monotonic()
    b.leave()
    wait_for_split([a, c], 6, [3, 3])
    print(f"{assignor}: rebalance after a member left: {time.monotonic() - started:.2f} s")
    a.leave()
    c.leave()


def test_the_first_join_of_a_new_group_is_prompt(bramble):
    create_topic(bramble.kafka, "prompt", 1)
    member = Member(bramble.kafka, "prompt-group", "prompt", "solo")
    started = time.monotonic()
    member.start()
    deadline = started + 15
    while member.assigned_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert member.assigned_at is not None, "never assigned"
    elapsed = member.assigned_at - started
    print(f"\nfirst join of a new group (subscribe to assignment): {elapsed * 1000:.0f} ms")
    assert elapsed < 3.0
    member.leave()


def consume(bootstrap, group, topic, count, timeout=30):
    """Consumes `count` messages in `group` (auto commit off), commits, closes; returns them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", **FAST})
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        got.append(msg.value().decode())
    if got:
        consumer.commit(asynchronous=False)
    consumer.close()
    return got


def committed(bootstrap, group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    consumer.close()
    return [tp.offset for tp in offsets]


def test_committed_offsets_resume_after_consumer_and_broker_restarts(bramble):
    create_topic(bramble.kafka, "resume", 3)
    values = [f"v{i}" for i in range(90)]
    produce(bramble.kafka, "resume", values, partitions=3)

    first = consume(bramble.kafka, "resumers", "resume", 40)
    assert len(first) == 40
    second = consume(bramble.kafka, "resumers", "resume", 50)
    assert sorted(first + second, key=lambda v: int(v[1:])) == values, "nothing lost, nothing twice"
    before = committed(bramble.kafka, "resumers", "resume", 3)
    assert before == [30, 30, 30]

    bramble.restart()
    assert committed(bramble.kafka, "resumers", "resume", 3) == before
    more = [f"w{i}" for i in range(9)]
    produce(bramble.kafka, "resume", more, partitions=3)
    third = consume(bramble.kafka, "resumers", "resume", 9)
    assert sorted(third) == sorted(more), "after a broker restart the group resumes where it committed"

    # A crash (SIGKILL) loses no acknowledged commit either.
    bramble.kill()
    bramble.start()
    assert committed(bramble.kafka, "resumers", "resume", 3) == [33, 33, 33]


MEMBER_SCRIPT = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 300, "partition.assignment.strategy": "range"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
"""


def test_a_killed_member_is_dropped_after_its_session_timeout(bramble):
    import signal
    import subprocess
    import sys

    create_topic(bramble.kafka, "orphans", 6)
    survivor = Member(bramble.kafka, "crashy", "orphans", "survivor")
    survivor.start()
    doomed = subprocess.Popen([sys.executable, "-c", MEMBER_SCRIPT, bramble.kafka, "crashy", "orphans"])
    try:
        deadline = time.monotonic() + 30
        while len(survivor.assignment()) != 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(survivor.assignment()) == 3, "the two members never split the topic"
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        killed = time.monotonic()
        wait_for_split([survivor], 6, [6], timeout=30)
        elapsed = time.monotonic() - killed
        print(f"\nkilled member's partitions reassigned after {elapsed:.1f} s (session.timeout.ms 6000)")
        assert 4 < elapsed < 15, "taken over once the dead member's session expired, not before"
    finally:
        if doomed.poll() is None:
            doomed.kill()
        survivor.leave()


def test_incremental_alter_configs_changes_topic_settings(bramble):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    create_topic(bramble.kafka, "tuned", 1)
    admin = AdminClient({"bootstrap.servers": bramble.kafka})
    resource = ConfigResource(ResourceType.TOPIC, "tuned", incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    admin.incremental_alter_configs([resource])[resource].result(15)
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "tuned")])
    configs = list(described.values())[0].result(15)
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "delete,compact"

    bad = ConfigResource(ResourceType.TOPIC, "tuned", incremental_configs=[
        ConfigEntry("segment.bytes", "12", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception) as refused:
        admin.incremental_alter_configs([bad])[bad].result(15)
    assert "segment.bytes" in str(refused.value)


def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance(bramble):
    create_topic(bramble.kafka, "static", 6)

    def static(name):
        member = Member(bramble.kafka, "statics", "static", name)
        member.consumer.close()
        member.consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "statics", "client.id": name,
                                    "group.instance.id": name, **FAST, "partition.assignment.strategy": "range"})
        return member

    leader = static("first")
    leader.start()
    deadline = time.monotonic() + 20
    while not leader.assignment() and time.monotonic() < deadline:
        time.sleep(0.05)
    follower = static("second")
    follower.start()
    before = wait_for_split([leader, follower], 6, [3, 3])
    time.sleep(1)
    leader_rebalances = leader.rebalances

    follower.leave()  # a static member does not send LeaveGroup: its place is kept
    restarted = static("second")
    started = time.monotonic()
    restarted.start()
    while restarted.assignment() != before[1] and time.monotonic() < started + 20:
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    assert restarted.assignment() == before[1], "the same partitions come back"
    assert elapsed < 3, f"no rebalance round (took {elapsed:.2f} s)"
    time.sleep(1)
    assert leader.rebalances == leader_rebalances, "the other member saw no rebalance"
    assert leader.assignment() == before[0]
    print(f"\nstatic member restart: partitions back after {elapsed * 1000:.0f} ms, no rebalance")
    leader.leave()
    restarted.leave()
