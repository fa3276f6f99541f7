"""The status LED of a three-node cluster (file backend): one leader, two followers, and a
follower's LED turns to leader after the leader is killed; a partition leader whose follower
is killed shows the partition under-replicated in `/health` and `/metrics` and turns
`degraded` until the follower is back in sync."""
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


def health(node):
    with urllib.request.urlopen(f"http://{node.admin}/health", timeout=10) as response:
        return json.loads(response.read())


def metric(node, line_start):
    with urllib.request.urlopen(f"http://{node.admin}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start + " "):
                return int(float(line.split(" ")[1]))
    raise AssertionError(f"no {line_start} in /metrics")


def test_a_lost_follower_makes_its_partition_under_replicated_on_the_leader(bramble_cluster):
    from confluent_kafka.admin import AdminClient, NewTopic

    cluster = start_cluster(bramble_cluster)
    nodes = cluster.nodes
    wait_for(lambda: roles(nodes) == ["follower", "follower", "leader"], what="1 leader, 2 followers", nodes=nodes)
    admin = AdminClient({"bootstrap.servers": ",".join(n.kafka for n in nodes)})
    wait_for(lambda: len(admin.list_topics(timeout=10).brokers) == 3, what="3 brokers")
    cluster.wait_for_brokers()
    admin.create_topics([NewTopic("watched", num_partitions=1, replication_factor=3)])["watched"].result(timeout=20)

    def partition():
        p = admin.list_topics("watched", timeout=10).topics["watched"].partitions[0]
        return p if len(p.isrs) == 3 else None

    p = wait_for(partition, what="watched-0 in sync")
    leader = cluster.node(p.leader)
    quorum_leader = next(n for n in nodes if last_led(n)[0] == "leader")
    victim = next(n for n in nodes if n is not leader and n is not quorum_leader) \
        if leader is not quorum_leader else next(n for n in nodes if n is not leader)
    shrinks = metric(leader, "bramble_isr_shrinks_total")
    victim.kill()
    wait_for(lambda: health(leader)["partitions"]["under_replicated"] == 1, what="under-replicated on the leader")
    body = wait_for(lambda: (b := health(leader))["state"] == "degraded" and b, what="degraded")
    assert "under-replicated" in body["reason"], body
    assert metric(leader, 'bramble_partitions{state="under_replicated"}') == 1
    assert metric(leader, "bramble_isr_shrinks_total") > shrinks
    assert health(leader)["partitions"]["offline"] == 0

    expands = metric(leader, "bramble_isr_expands_total")
    victim.start()
    wait_for(lambda: health(leader)["partitions"]["under_replicated"] == 0, what="back in sync")
    assert metric(leader, "bramble_isr_expands_total") > expands
    wait_for(lambda: health(leader)["state"] != "degraded", what="not degraded any more")
