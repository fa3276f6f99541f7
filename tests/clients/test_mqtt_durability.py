"""MQTT durability: a PUBACK means the record is committed, so killing bramble (SIGKILL)
mid-stream and restarting it loses no acknowledged message."""
import time

import paho.mqtt.client as mqtt

from mqtt_support import read_topic, start_mqtt_bramble


def test_pubacked_messages_survive_kill_and_restart(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="durable-sensor",
                         protocol=mqtt.MQTTv311, clean_session=False)
    client.reconnect_delay_set(min_delay=0.1, max_delay=1)
    client.max_queued_messages_set(0)
    connects = []
    client.on_connect = lambda client, userdata, flags, reason_code, properties: connects.append(reason_code)
    client.connect("127.0.0.1", port)
    client.loop_start()

    # paho marks each message's info as published when its PUBACK arrives.
    total, kill_at = 6000, 2000
    sent = []
    acked_before_kill = 0
    for n in range(total):
        payload = f"reading-{n}".encode()
        sent.append((payload, client.publish("sensors/durable", payload, qos=1)))
        if n == kill_at:
            acked_before_kill = sum(info.is_published() for _, info in sent)
            node.kill()  # power-cut style, with publishes in flight
            node.start()
            # Publish on only once paho is back (a publish while disconnected is refused).
            deadline = time.monotonic() + 20
            while len(connects) < 2:
                assert time.monotonic() < deadline, "paho did not reconnect"
                time.sleep(0.05)
        if n % 200 == 0:
            time.sleep(0.01)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(info.is_published() for _, info in sent):
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()

    assert 0 < acked_before_kill <= kill_at, "the kill came mid-stream"
    acked_payloads = {payload for payload, info in sent if info.is_published()}
    # paho resends what was in flight at the kill; with bramble back, everything is acked.
    assert len(acked_payloads) == total, f"only {len(acked_payloads)} of {total} acknowledged"
    records = read_topic(node.kafka, "sensors", len(acked_payloads), timeout=60)
    landed = {r.value() for r in records}
    lost = acked_payloads - landed
    assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
    print(f"acked before kill: {acked_before_kill}, records: {len(records)}, acked: {len(acked_payloads)}")
    # At least once: duplicates of unacknowledged resends are allowed, losses are not.
    assert len(records) >= len(acked_payloads)
