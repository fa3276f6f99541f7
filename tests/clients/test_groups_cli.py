"""`bramble group list|describe|reset-offsets|delete` against a real bramble, with a group made
by confluent-kafka."""
import subprocess

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY


def cli(bramble, *args, check=True):
    result = subprocess.run([str(BINARY), "group", *args, "--bootstrap-server", bramble.kafka],
                            capture_output=True, timeout=30)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode(), result.stderr.decode(), result.returncode


def test_group_cli(bramble):
    admin = AdminClient({"bootstrap.servers": bramble.kafka})
    admin.create_topics([NewTopic("cli-topic", num_partitions=2, replication_factor=1)])["cli-topic"].result(15)
    producer = Producer({"bootstrap.servers": bramble.kafka})
    for i in range(20):
        producer.produce("cli-topic", value=b"x", partition=i % 2)
    producer.flush(15)
    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "cli-group", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["cli-topic"])
    seen = 0
    while seen < 15:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            seen += 1
            consumer.commit(message=msg, asynchronous=False)

    out, _, _ = cli(bramble, "list")
    assert "cli-group" in out and "Stable" in out
    out, _, _ = cli(bramble, "describe", "cli-group")
    assert "Stable (1 members, protocol range)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("cli-group ")]
    assert len(rows) == 2
    assert sum(int(r[5]) for r in rows) == 5, "lag is what is left to read"

    _, err, code = cli(bramble, "reset-offsets", "cli-group", "--topic", "cli-topic", "--to-earliest", check=False)
    assert code != 0 and "inactive" in err
    _, err, code = cli(bramble, "delete", "cli-group", check=False)
    assert code != 0 and "members" in err
    consumer.close()

    out, _, _ = cli(bramble, "reset-offsets", "cli-group", "--topic", "cli-topic", "--to-earliest")
    assert "dry run" in out
    cli(bramble, "reset-offsets", "cli-group", "--topic", "cli-topic", "--shift-by", "-2", "--execute")
    out, _, _ = cli(bramble, "describe", "cli-group")
    rows = [line.split() for line in out.splitlines() if line.startswith("cli-group ")]
    assert sum(int(r[5]) for r in rows) == 9, out

    cli(bramble, "delete", "cli-group")
    out, _, _ = cli(bramble, "list")
    assert "cli-group" not in out
