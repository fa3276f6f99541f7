"""Durability: data survives a clean restart and a kill -9 with a torn tail appended by
hand; retention deletes whole old segments by time and by size."""
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def read_all(bramble, topic, partitions=1, expect=None, timeout=30):
    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "unused",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])  # -2: beginning
    records, eof = {}, set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                eof.add(msg.partition())
                if len(eof) == partitions and (expect is None or len(records) >= expect):
                    break
                continue
            raise AssertionError(msg.error())
        records[(msg.partition(), msg.offset())] = msg.value()
    consumer.close()
    return records


def produce(bramble, topic, values, **config):
    errors = []
    producer = Producer({"bootstrap.servers": bramble.kafka, "acks": "all",
                         "on_delivery": lambda err, msg: err and errors.append(err), **config})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


def test_data_intact_after_clean_restart(bramble):
    values = [f"r{i}".encode() for i in range(1000)]
    produce(bramble, "restart", values)
    bramble.stop()
    # Kafka's checkpoint files, in Kafka's format, written at clean shutdown.
    for name in ("replication-offset-checkpoint", "recovery-point-offset-checkpoint"):
        lines = (bramble.log_dir / name).read_text().splitlines()
        assert lines == ["0", "1", "restart 0 1000"], (name, lines)
    bramble.start()
    records = read_all(bramble, "restart", expect=1000)
    assert [records[(0, i)] for i in range(1000)] == values
    # Appends continue at the right offset after the restart.
    produce(bramble, "restart", [b"after"])
    assert read_all(bramble, "restart", expect=1001)[(0, 1000)] == b"after"


def test_acknowledged_writes_survive_kill_9_and_a_torn_tail(bramble):
    client = AdminClient({"bootstrap.servers": bramble.kafka})
    for f in client.create_topics([NewTopic("crash", num_partitions=2, replication_factor=1)]).values():
        f.result(timeout=30)
    acked = {}
    stop = threading.Event()

    def load():
        producer = Producer({"bootstrap.servers": bramble.kafka, "acks": "all", "linger.ms": 2,
                             "message.timeout.ms": 5000, "retries": 0})

        def on_delivery(err, msg):
            if err is None:
                acked[(msg.partition(), msg.offset())] = msg.value()

        i = 0
        while not stop.is_set():
            try:
                producer.produce("crash", value=f"value-{i}".encode(), on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            producer.poll(0.001 if i % 100 == 0 else 0)
        producer.flush(6)

    thread = threading.Thread(target=load)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    bramble.kill()
    stop.set()
    thread.join(30)
    assert len(acked) >= 2000, "the load never got going"

    # A power cut can leave half a batch at the end of the active segment: fake one.
    for partition in range(2):
        segments = sorted((bramble.log_dir / f"crash-{partition}").glob("*.log"))
        with open(segments[-1], "ab") as f:
            f.write(b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x10\x00torn-tail-garbage")

    bramble.start()
    records = read_all(bramble, "crash", partitions=2, expect=len(acked))
    missing = [key for key in acked if records.get(key) != acked[key]]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    # Offsets are dense in each partition: nothing torn is served.
    for partition in range(2):
        offsets = sorted(o for p, o in records if p == partition)
        assert offsets == list(range(len(offsets)))
    # And the log takes new writes after recovery.
    produce(bramble, "crash", [b"after-recovery"])


def one_record_batches(bramble):
    """A producer sending one record per batch (so small segments roll), and its errors."""
    errors = []
    producer = Producer({"bootstrap.servers": bramble.kafka, "acks": "all", "linger.ms": 0,
                         "batch.num.messages": 1,
                         "on_delivery": lambda err, msg: err and errors.append(err)})
    return producer, errors


def test_retention_deletes_old_segments_by_time(bramble_factory):
    bramble = bramble_factory(
        "message_max_bytes = 4096\nlog_segment_bytes = 16384\nlog_retention_check_interval_ms = 200\n"
    ).start()
    client = AdminClient({"bootstrap.servers": bramble.kafka})
    for f in client.create_topics([NewTopic("old", num_partitions=1, replication_factor=1,
                                            config={"retention.ms": "60000"})]).values():
        f.result(timeout=30)
    # Records stamped two minutes ago, in batches of one, so segments roll by size.
    producer, errors = one_record_batches(bramble)
    old = int(time.time() * 1000) - 120_000
    for i in range(100):
        producer.produce("old", value=b"x" * 1000, timestamp=old)
    assert producer.flush(30) == 0
    producer.produce("old", value=b"fresh")
    assert producer.flush(30) == 0
    assert not errors, errors[:3]
    partition_dir = bramble.log_dir / "old-0"
    deadline = time.monotonic() + 15
    while len(list(partition_dir.glob("*.log"))) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    segments = list(partition_dir.glob("*.log"))
    assert len(segments) == 1, f"old segments not deleted: {segments}"
    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "unused"})
    low, high = consumer.get_watermark_offsets(TopicPartition("old", 0), timeout=10)
    consumer.close()
    assert high == 101 and low > 0, (low, high)
    assert read_all(bramble, "old", expect=1)[(0, 100)] == b"fresh"


def test_retention_deletes_oldest_segments_by_size(bramble_factory):
    bramble = bramble_factory(
        "message_max_bytes = 4096\nlog_segment_bytes = 16384\nlog_retention_check_interval_ms = 200\n"
        "log_retention_bytes = 40000\n"
    ).start()
    producer, errors = one_record_batches(bramble)
    for i in range(200):
        producer.produce("big", value=b"y" * 1000)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]
    partition_dir = bramble.log_dir / "big-0"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        total = sum(p.stat().st_size for p in partition_dir.glob("*.log"))
        if total <= 40000 + 16384:
            break
        time.sleep(0.2)
    total = sum(p.stat().st_size for p in partition_dir.glob("*.log"))
    assert total <= 40000 + 16384, f"{total} bytes left"
    names = sorted(p.name for p in partition_dir.glob("*.log"))
    assert names[0] != "00000000000000000000.log"
