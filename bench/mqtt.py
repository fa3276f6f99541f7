#!/usr/bin/env python3
"""MQTT QoS 1 ingest throughput of a bramble node, beside Mosquitto's own QoS 1 throughput
measured in the same run with the same publisher (mosquitto_pub).

    .venv/bin/python bench/mqtt.py [--binary target/debug/bramble] [--messages 60000]
        [--publishers 3] [--payload 64] [--protocols mqttv311,mqttv5]

Rows, per MQTT protocol version of the publisher:
- mosquitto:            mosquitto_pub → Mosquitto, no subscriber (time until every
                        publisher has its PUBACKs and exits);
- mosquitto → sub:      the same, with a QoS 1 mosquitto_sub that must receive everything;
- bramble listener:     mosquitto_pub → bramble's listener; a PUBACK means fsynced into
                        the log (time until every publisher exits; the log is then checked);
- bramble bridge:       mosquitto_pub → Mosquitto → bramble's bridge (rumqttc, manual acks)
                        → log (time until the log's high watermark holds every message).

Prints a Markdown table. Timings on a shared machine are noisy: compare ratios within one
run. Needs Debian's mosquitto and mosquitto-clients, and confluent-kafka.
"""
import argparse
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, TopicPartition

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Mosquitto:
    def __init__(self, workdir):
        self.port = free_port()
        config = pathlib.Path(workdir) / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n"
            # Outgoing window to subscribers (bramble's bridge, mosquitto_sub) and no queue cap.
            "max_inflight_messages 1000\nmax_queued_messages 0\n"
        )
        self.process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)


class Bramble:
    def __init__(self, binary, workdir, mqtt_section):
        self.workdir = pathlib.Path(workdir)
        self.kafka_port = free_port()
        self.mqtt_port = free_port()
        config = self.workdir / "bramble.toml"
        config.write_text(
            # Every listener on a free port: the ZooKeeper one is always on.
            f'[coordinator]\ndata_dir = "{self.workdir / "zookeeper"}"\nlisten = "127.0.0.1:{free_port()}"\n'
            "[node]\nid = 1\n[broker]\n"
            f'listeners = ["127.0.0.1:{self.kafka_port}"]\n'
            f'log_dirs = ["{self.workdir / "kafka-logs"}"]\n'
            + mqtt_section.format(mqtt_port=self.mqtt_port)
        )
        self.process = subprocess.Popen([binary, "serve", "--config", str(config)],
                                        stderr=open(self.workdir / "log", "wb"))
        wait_for_port(self.kafka_port, self.process)

    def high_watermark(self, consumer, topic):
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1]
        except Exception:  # the topic is created on the first message
            return 0

    def wait_for(self, topic, count, timeout=600):
        consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{self.kafka_port}", "group.id": "bench"})
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.high_watermark(consumer, topic) >= count:
                    return
                time.sleep(0.01)
            raise TimeoutError(f"{topic} did not reach {count} records")
        finally:
            consumer.close()

    def count(self, topic):
        consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{self.kafka_port}", "group.id": "bench"})
        try:
            return self.high_watermark(consumer, topic)
        finally:
            consumer.close()


def publish(port, topic_prefix, messages, publishers, payload, protocol):
    """Run `publishers` mosquitto_pub -l -q 1 processes sharing `messages`; returns seconds
    until the last exits (each exits once all its messages are PUBACKed)."""
    per = messages // publishers
    assert per <= 65_535, "mosquitto_pub -l -q 1 drops lines past 65,535 per run"
    body = "x" * max(0, payload - 12)
    inputs = ["".join(f"{p:02d}-{n:08d}{body}\n" for n in range(per)) for p in range(publishers)]
    processes = []
    started = time.monotonic()
    for p in range(publishers):
        process = subprocess.Popen(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", f"{topic_prefix}/{p}", "-q", "1", "-l",
             "-V", protocol],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        threading.Thread(target=process.communicate, args=(inputs[p],), daemon=True).start()
        processes.append(process)
    for process in processes:
        if process.wait(600) != 0:
            raise RuntimeError(f"mosquitto_pub failed with {process.returncode}")
    return time.monotonic() - started, per * publishers


def run(args, protocol):
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        broker = Mosquitto(tmp)
        try:
            seconds, n = publish(broker.port, f"plain-{protocol}", args.messages, args.publishers, args.payload, protocol)
            rows.append(("mosquitto (no subscriber)", n, seconds))

            sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", f"sub-{protocol}/#",
                                    "-q", "1", "-C", str(n), "-V", protocol], stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            started = time.monotonic()
            publish(broker.port, f"sub-{protocol}", args.messages, args.publishers, args.payload, protocol)
            sub.wait(600)
            rows.append(("mosquitto → mosquitto_sub QoS 1", n, time.monotonic() - started))

            listener = Bramble(args.binary, pathlib.Path(tmp), (
                '[mqtt]\nlisten = "127.0.0.1:{mqtt_port}"\n'
                '[[mqtt.route]]\nfilter = "ingest/#"\ntopic = "ingest"\n'
            ))
            try:
                seconds, n = publish(listener.mqtt_port, "ingest", args.messages, args.publishers, args.payload, protocol)
                landed = listener.count("ingest")
                assert landed == n, f"{landed} records for {n} messages"
                rows.append(("bramble listener (PUBACK = fsynced)", n, seconds))
            finally:
                stop(listener.process)

            bridged_dir = pathlib.Path(tmp) / "bridge"
            bridged_dir.mkdir()
            bridged = Bramble(args.binary, bridged_dir, (
                "[[mqtt.bridge]]\n"
                f'url = "mqtt://127.0.0.1:{broker.port}"\n'
                f'subscribe = ["bridged-{protocol}/#"]\ntopic = "bridged"\nqos = 1\n'
            ))
            try:
                deadline = time.monotonic() + 20
                while "subscribed" not in (bridged.workdir / "log").read_text(errors="replace"):
                    if time.monotonic() > deadline:
                        raise TimeoutError("bridge did not subscribe")
                    time.sleep(0.05)
                started = time.monotonic()
                _, n = publish(broker.port, f"bridged-{protocol}", args.messages, args.publishers, args.payload, protocol)
                bridged.wait_for("bridged", n)
                rows.append(("bramble bridge (Mosquitto → log, fsynced)", n, time.monotonic() - started))
            finally:
                stop(bridged.process)
        finally:
            stop(broker.process)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target" / "debug" / "bramble"))
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--publishers", type=int, default=3)
    parser.add_argument("--payload", type=int, default=64, help="bytes per message")
    parser.add_argument("--protocols", default="mqttv311,mqttv5")
    args = parser.parse_args()
    print(f"{args.messages} QoS 1 messages of {args.payload} bytes from {args.publishers} mosquitto_pub -l, "
          f"binary {args.binary}\n")
    print("| publisher protocol | path | messages | seconds | messages/s |")
    print("|---|---|---:|---:|---:|")
    for protocol in args.protocols.split(","):
        for name, n, seconds in run(args, protocol):
            print(f"| {protocol} | {name} | {n} | {seconds:.2f} | {n / seconds:,.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
