"""kcat's balanced consumer (`kcat -G`, librdkafka) against a real bramble: it joins a group,
reads every partition, commits, and a second run resumes where the first stopped."""
import subprocess
import time

from confluent_kafka.admin import AdminClient, NewTopic

from conftest import require_tool


def kcat(*args, input=None, timeout=60):
    result = subprocess.run([require_tool("kcat"), *args], input=input, capture_output=True, timeout=timeout)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def produce(bramble, topic, lines):
    kcat("-b", bramble.kafka, "-P", "-t", topic, "-K:", input="".join(lines).encode())


def consume_group(bramble, group, topic):
    started = time.monotonic()
    out = kcat("-b", bramble.kafka, "-G", group, topic, "-e", "-q", "-f", "%s\n",
               "-X", "auto.offset.reset=earliest", "-X", "heartbeat.interval.ms=300")
    return out.splitlines(), time.monotonic() - started


def test_kcat_balanced_consumer_consumes_and_resumes(bramble):
    admin = AdminClient({"bootstrap.servers": bramble.kafka})
    admin.create_topics([NewTopic("kcat-group", num_partitions=4, replication_factor=1)])["kcat-group"].result(15)
    produce(bramble, "kcat-group", [f"k{i}:v{i}\n" for i in range(100)])
    first, elapsed = consume_group(bramble, "kcat-readers", "kcat-group")
    assert sorted(first, key=lambda v: int(v[1:])) == [f"v{i}" for i in range(100)]
    print(f"\nkcat -G: join, read 100 records from 4 partitions, commit, leave: {elapsed:.2f} s")

    produce(bramble, "kcat-group", [f"k{i}:w{i}\n" for i in range(10)])
    second, _ = consume_group(bramble, "kcat-readers", "kcat-group")
    assert sorted(second) == sorted(f"w{i}" for i in range(10)), "the second run resumes after the commit"
