"""The status LED of a three-node cluster (file backend): one leader, two followers, and a
follower's LED turns to leader after the leader is killed."""
import json
import time
import urllib.request


def last_led(node):
    path = node.workdir / "led.log"
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    return lines[-1].split(" ")[1:] if lines else None


def wait_for(predicate, timeout=30.0, what="condition", nodes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    leds = {n.node_id: last_led(n) for n in nodes}
    raise AssertionError(f"timed out waiting for {what}; LEDs: {leds}")


def roles(nodes):
    return sorted((last_led(n) or [None])[0] or "none" for n in nodes)


def start_cluster(bramble_cluster):
    cluster = bramble_cluster(3)
    for n in cluster.nodes:
        n.sections = f'[led]\nbackend = "file"\npath = "{n.workdir / "led.log"}"\n'
        n.write_config()
    return cluster.start()


def test_three_nodes_show_one_leader_and_two_followers(bramble_cluster):
    cluster = start_cluster(bramble_cluster)
    nodes = cluster.nodes
    wait_for(lambda: roles(nodes) == ["follower", "follower", "leader"], what="1 leader, 2 followers", nodes=nodes)
    patterns = {tuple(last_led(n)) for n in nodes}
    assert patterns == {("leader", "solid"), ("follower", "slow-blink")}
    leader = next(n for n in nodes if last_led(n)[0] == "leader")
    assert leader is cluster.leader()
    for n in nodes:
        with urllib.request.urlopen(f"http://{n.admin}/health", timeout=10) as response:
            body = json.loads(response.read())
        assert body["leader"] == leader.node_id and body["quorum"] is True and body["voters"] == 3
        assert body["role"] == ("leader" if n is leader else "follower")


def test_a_follower_led_turns_leader_after_the_leader_is_killed(bramble_cluster):
    cluster = start_cluster(bramble_cluster)
    nodes = cluster.nodes
    wait_for(lambda: roles(nodes) == ["follower", "follower", "leader"], what="1 leader, 2 followers", nodes=nodes)
    old = next(n for n in nodes if last_led(n)[0] == "leader")
    old.kill()
    survivors = [n for n in nodes if n is not old]
    wait_for(lambda: roles(survivors) == ["follower", "leader"], what="a new leader among the survivors", nodes=survivors)
    new = next(n for n in survivors if last_led(n)[0] == "leader")
    history = [line.split(" ")[1] for line in (new.workdir / "led.log").read_text().splitlines()]
    assert history[-1] == "leader" and "follower" in history
