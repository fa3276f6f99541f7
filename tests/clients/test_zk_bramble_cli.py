"""`bramble zk ls|get|stat|create|set|delete` against bramble and against Debian's ZooKeeper."""

import subprocess

import pytest

from zk_support import Bramble, RealZooKeeper, bramble_bin, require_real_zookeeper


def cli(hosts, *args, ok=True):
    out = subprocess.run([bramble_bin(), "zk", *args, "--server", hosts], capture_output=True, text=True, timeout=30)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def exercise(hosts):
    assert cli(hosts, "create", "/cli", "hello").stdout == "Created /cli\n"
    assert cli(hosts, "create", "-s", "/cli/s-").stdout == "Created /cli/s-0000000000\n"
    assert cli(hosts, "ls", "/cli").stdout == "[s-0000000000]\n"
    assert cli(hosts, "get", "/cli").stdout == "hello\n"
    cli(hosts, "set", "/cli", "v2")
    stat = cli(hosts, "stat", "/cli").stdout
    assert "dataVersion = 1" in stat and "numChildren = 1" in stat
    failed = cli(hosts, "delete", "/cli", ok=False)
    assert failed.returncode != 0 and "not empty" in failed.stderr
    cli(hosts, "delete", "/cli/s-0000000000")
    cli(hosts, "delete", "/cli")
    missing = cli(hosts, "get", "/cli", ok=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    cli(hosts, "create", "/chroot")
    cli(hosts + "/chroot", "create", "/inside", "x")
    assert cli(hosts, "ls", "/chroot").stdout == "[inside]\n"


def test_bramble_zk_against_bramble(tmp_path):
    b = Bramble(tmp_path).start()
    try:
        exercise(b.hosts)
    finally:
        b.stop()


def test_bramble_zk_against_zookeeper(tmp_path):
    require_real_zookeeper()
    z = RealZooKeeper(tmp_path).start()
    try:
        exercise(z.hosts)
    finally:
        z.stop()
