"""zkCli.sh from Debian's zookeeper package against `bramble serve`: create, get, ls, set,
stat, delete, and a watch firing."""

import subprocess

import pytest

from zk_support import ZKCLI, Bramble, require_real_zookeeper

@pytest.fixture(autouse=True)
def _real_zookeeper_installed():
    require_real_zookeeper()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    b = Bramble(tmp_path_factory.mktemp("bramble-zkcli")).start()
    yield b
    b.stop()


def zkcli(server, *args, stdin=None):
    out = subprocess.run([ZKCLI, "-server", server.hosts, *args], input=stdin, capture_output=True,
                         text=True, timeout=60)
    return out.stdout + out.stderr


def test_create_get_ls_set_stat_delete(server):
    assert "Created /cli" in zkcli(server, "create", "/cli", "hello")
    assert "hello" in zkcli(server, "get", "/cli")
    zkcli(server, "create", "/cli/child", "c")
    assert "[child]" in zkcli(server, "ls", "/cli")
    zkcli(server, "set", "/cli", "world")
    stat = zkcli(server, "stat", "/cli")
    assert "dataVersion = 1" in stat and "numChildren = 1" in stat and "dataLength = 5" in stat
    assert "world" in zkcli(server, "get", "/cli")
    seq = zkcli(server, "create", "-s", "/cli/child/s-", "")
    assert "Created /cli/child/s-0000000000" in seq
    zkcli(server, "deleteall", "/cli/child")
    zkcli(server, "delete", "/cli")
    assert "Node does not exist" in zkcli(server, "stat", "/cli")


def test_a_watch_fires_in_zkcli(server):
    zkcli(server, "create", "/watched", "v1")
    out = zkcli(server, stdin="get -w /watched\nset /watched v2\nls /\nquit\n")
    assert "type:NodeDataChanged path:/watched" in out
    assert "watched" in out and "zookeeper" in out
