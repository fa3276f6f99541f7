"""Helpers for the MQTT tests: a real Mosquitto on a free loopback port, bramble's `[mqtt]`
section, and reading back what landed in the log with confluent-kafka."""
import pathlib
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition

from conftest import free_port, require_tool, wait_for_port


def mqtt_sections(port, routes=(), bridges=(), extra=""):
    """The `[mqtt]` section (listener on `port`, or none when `port` is None) with routes
    as (filter, topic, key-or-None) and bridges as dicts of bridge keys."""
    lines = ["[mqtt]"]
    if port is not None:
        lines.append(f'listen = "127.0.0.1:{port}"')
    if extra:
        lines.append(extra)
    for filter_, topic, key in routes:
        lines += ["[[mqtt.route]]", f'filter = "{filter_}"', f'topic = "{topic}"']
        if key is not None:
            lines.append(f'key = "{key}"')
    for bridge in bridges:
        lines.append("[[mqtt.bridge]]")
        for name, value in bridge.items():
            if isinstance(value, str):
                lines.append(f'{name} = "{value}"')
            elif isinstance(value, list):
                lines.append(f"{name} = [" + ", ".join(f'"{v}"' for v in value) + "]")
            else:
                lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"


def start_mqtt_bramble(bramble_factory, routes=(("sensors/#", "sensors", None),), bridges=(), extra=""):
    """A started bramble with an MQTT listener; returns (node, mqtt port)."""
    port = free_port()
    node = bramble_factory(sections=mqtt_sections(port, routes, bridges, extra))
    node.start()
    wait_for_port("127.0.0.1", port, process=node.process)
    return node, port


class Mosquitto:
    """A real Mosquitto broker with its own config file, stopped by PID."""

    def __init__(self, workdir: pathlib.Path, extra_config="", name="mosquitto"):
        require_tool("mosquitto")
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / f"{name}.conf"
        self.log_path = workdir / f"{name}.log"
        self.extra_config = extra_config
        self.process = None

    def start(self):
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # Run as whoever starts the test; do not switch to the mosquitto user.
            "user root\n"
            # The same in-flight window for every client, bramble's bridge included.
            "max_inflight_messages 100\n"
            "max_queued_messages 0\n"
            f"{self.extra_config}\n"
        )
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config_path)], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for_port("127.0.0.1", self.port, process=self.process)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def mosquitto_pub_lines(port, topic, lines, qos=1, client_id=None, version="mqttv311", extra=(), host="127.0.0.1"):
    """Publish each line as one message with `mosquitto_pub -l`; waits for it to exit (all
    QoS 1 messages acknowledged) and returns the completed process."""
    require_tool("mosquitto_pub")
    args = ["mosquitto_pub", "-h", host, "-p", str(port), "-t", topic, "-q", str(qos), "-l", "-V", version]
    if client_id:
        args += ["-i", client_id]
    args += list(extra)
    return subprocess.run(args, input="\n".join(lines) + "\n", text=True, capture_output=True, timeout=300)


def read_topic(bootstrap, topic, expected, timeout=60.0, partitions=None):
    """Read records from the start of `topic` until `expected` arrived (or the timeout);
    returns a list of confluent-kafka messages, partition by partition in offset order."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"mqtt-test-{time.monotonic_ns()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 500,
    })
    try:
        deadline = time.monotonic() + timeout
        while True:
            metadata = consumer.list_topics(topic, timeout=10)
            info = metadata.topics.get(topic)
            if info is not None and info.error is None and info.partitions:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} never appeared")
            time.sleep(0.2)
        count = partitions or len(info.partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(count)])
        records = []
        while len(records) < expected and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            for message in batch:
                if message.error() is None:
                    records.append(message)
        # A little longer: more than expected would be a bug the caller should see.
        for message in consumer.consume(num_messages=10_000, timeout=0.5):
            if message.error() is None:
                records.append(message)
        return records
    finally:
        consumer.close()


def wait_for_log_line(node, text, timeout=30.0):
    """Wait until bramble's log contains `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.stderr_path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in bramble's log:\n{node.log_tail()}")
