"""MQTT logins against the shared user store (`[mqtt] require_auth = true`), driven by
mosquitto_pub (3.1.1 and 5): no credentials, a wrong password and an unknown user are
refused with the CONNACK codes MQTT defines; the right ones publish."""
from mqtt_support import mosquitto_pub_lines, read_topic, start_mqtt_bramble
from test_security_sasl import add_user


def test_mosquitto_pub_logs_in_with_a_bramble_user(bramble_factory):
    node, port = start_mqtt_bramble(bramble_factory, extra="require_auth = true")
    add_user(node, "sensor", "sensor-secret")
    for version in ("mqttv311", "mqttv5"):
        anonymous = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version)
        assert anonymous.returncode != 0
        assert "not authori" in (anonymous.stdout + anonymous.stderr).lower(), anonymous.stderr
        wrong = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version,
                                    extra=["-u", "sensor", "-P", "wrong"])
        assert wrong.returncode != 0
        assert "bad user name or password" in (wrong.stdout + wrong.stderr).lower(), wrong.stderr
        stranger = mosquitto_pub_lines(port, "sensors/x", ["nope"], version=version,
                                       extra=["-u", "mallory", "-P", "sensor-secret"])
        assert stranger.returncode != 0
        right = mosquitto_pub_lines(port, "sensors/x", [f"yes-{version}"], version=version,
                                    extra=["-u", "sensor", "-P", "sensor-secret"])
        assert right.returncode == 0, right.stderr
    values = [r.value() for r in read_topic(node.kafka, "sensors", 2)]
    assert values == [b"yes-mqttv311", b"yes-mqttv5"]
