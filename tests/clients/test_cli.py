"""`bramble topic|produce|consume`: the command line as a Kafka client, checked against a
real node and cross-checked with kcat."""
import subprocess

from conftest import BINARY, require_tool


def cli(*args, input=None, check=True):
    result = subprocess.run([str(BINARY), *args], input=input, capture_output=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def test_topic_lifecycle(bramble):
    server = ["--bootstrap-server", bramble.kafka]
    out = cli("topic", "create", "sensors", "--partitions", "3", "--config", "retention.ms=60000", *server)
    assert b"Created topic sensors." in out.stdout
    assert cli("topic", "list", *server).stdout.decode().split() == ["sensors"]
    described = cli("topic", "describe", "sensors", *server).stdout.decode()
    assert "PartitionCount: 3" in described and "retention.ms=60000" in described
    assert described.count("Leader: 1") == 3
    again = cli("topic", "create", "sensors", *server, check=False)
    assert again.returncode != 0 and b"36" in again.stderr  # TOPIC_ALREADY_EXISTS
    cli("topic", "delete", "sensors", *server)
    assert cli("topic", "list", *server).stdout.decode().split() == []


def test_produce_then_consume_with_keys(bramble):
    server = ["--bootstrap-server", bramble.kafka]
    cli("topic", "create", "readings", "--partitions", "2", *server)
    lines = "".join(f"room{i % 4}:{i}\n" for i in range(100)).encode()
    cli("produce", "readings", "--key-separator", ":", *server, input=lines)
    out = cli("consume", "readings", "--from-beginning", "--max-messages", "100", "--print-key", *server)
    pairs = [line.split("\t") for line in out.stdout.decode().splitlines()]
    assert sorted(int(v) for _, v in pairs) == list(range(100))
    # Same key -> same partition, as Kafka's murmur2 partitioner: kcat agrees per partition.
    kcat = require_tool("kcat")
    partitions_per_key = {}
    for partition in (0, 1):
        keys = subprocess.run([kcat, "-b", bramble.kafka, "-C", "-t", "readings", "-p", str(partition),
                               "-e", "-f", "%k\n"], capture_output=True, timeout=60).stdout.decode().split()
        for key in keys:
            partitions_per_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_per_key.values())


def test_consume_stops_on_timeout_when_idle(bramble):
    server = ["--bootstrap-server", bramble.kafka]
    cli("produce", "idle", *server, input=b"only\n")
    out = cli("consume", "idle", "--from-beginning", "--timeout-ms", "1500", *server)
    assert out.stdout == b"only\n"


def test_version_and_bad_config(tmp_path):
    assert cli("--version").stdout.decode().startswith("bramble ")
    config = tmp_path / "bad.toml"
    config.write_text("[broker]\nnum_partition = 3\n")
    result = cli("serve", "--config", str(config), check=False)
    assert result.returncode != 0
    assert b"num_partition" in result.stderr
