"""kcat (librdkafka, Debian's 1.7.1) against a real bramble: keyed produce with every
compression codec, consume to the end, metadata."""
import subprocess

import pytest

from conftest import require_tool

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def kcat(*args, input=None, timeout=60):
    result = subprocess.run(
        [require_tool("kcat"), *args], input=input, capture_output=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_produce_and_consume_with_each_codec(bramble, codec):
    topic = f"kcat-{codec}"
    lines = "".join(f"key{i}:value {i} {codec}\n" for i in range(200))
    kcat("-b", bramble.kafka, "-P", "-t", topic, "-K:", "-z", codec, "-X", "linger.ms=50",
         input=lines.encode())
    out = kcat("-b", bramble.kafka, "-C", "-t", topic, "-e", "-f", "%k=%s@%o\n")
    records = out.splitlines()
    assert records == [f"key{i}=value {i} {codec}@{i}" for i in range(200)]


def test_metadata_lists_broker_as_controller_and_leader(bramble):
    kcat("-b", bramble.kafka, "-P", "-t", "meta", input=b"x\n")
    out = kcat("-b", bramble.kafka, "-L", "-t", "meta")
    assert "broker 1 at 127.0.0.1" in out and "(controller)" in out
    assert "partition 0, leader 1, replicas: 1, isrs: 1" in out


def test_consume_from_offset_and_tail(bramble):
    kcat("-b", bramble.kafka, "-P", "-t", "tail", input="".join(f"{i}\n" for i in range(50)).encode())
    out = kcat("-b", bramble.kafka, "-C", "-t", "tail", "-o", "45", "-e")
    assert out.split() == [str(i) for i in range(45, 50)]
    out = kcat("-b", bramble.kafka, "-C", "-t", "tail", "-o", "-3", "-e")
    assert out.split() == ["47", "48", "49"]
