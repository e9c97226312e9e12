"""MQTT against a real Mosquitto broker, as Home Assistant sees it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from common.arming import ArmingStore
from common.messages import ArmState, Disarm, Motion, Recording, Snapshot
from tests.notify.conftest import Harness, jpeg, wait_until
from tests.notify.peers import Mosquitto


class Listener:
    """What Home Assistant would receive: every message, retained ones included."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha")
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()

    def _on(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_discovery_events_and_the_arm_switch(mosquitto: Mosquitto,
                                             harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"mqtt": {"enabled": True, "port": mosquitto.port},
                         "telegram": {"cooldown_seconds": 0}})
    wait_until(lambda: h.svc.mqtt.connected, 10, "notify to reach the broker")
    time.sleep(0.2)
    ha = Listener(mosquitto.port)  # joins late: discovery must be retained
    try:
        node = "pisentry_cam1"
        wait_until(lambda: ha.on(f"homeassistant/switch/{node}/arm/config"), 5, "discovery")
        sensor = json.loads(ha.on(f"homeassistant/binary_sensor/{node}/motion/config")[0])
        assert sensor["device_class"] == "motion" and sensor["state_topic"] == "pisentry/cam1/motion"
        assert sensor["availability_topic"] == "pisentry/cam1/availability"
        camera = json.loads(ha.on(f"homeassistant/camera/{node}/snapshot/config")[0])
        assert camera["topic"] == "pisentry/cam1/snapshot"
        switch = json.loads(ha.on(f"homeassistant/switch/{node}/arm/config")[0])
        assert switch["command_topic"] == "pisentry/cam1/armed/set"
        assert len({sensor["unique_id"], camera["unique_id"], switch["unique_id"]}) == 3
        assert sensor["device"]["identifiers"] == switch["device"]["identifiers"]
        assert ha.on("pisentry/cam1/availability")[-1] == b"online"
        assert ha.on("pisentry/cam1/armed")[-1] == b"ON"

        photo = jpeg(21)
        ts = time.time()
        h.detect.publish(Motion, ts=ts, event_id="q1", phase="start", labels=["person"],
                         zones=["door"], score=0.9)
        h.detect.publish(Snapshot, [photo], ts=ts, event_id="q1", kind="event", width=320,
                         height=240)
        h.detect.publish(Motion, ts=ts + 1, event_id="q1", phase="end")
        h.record.publish(Recording, ts=ts + 2, phase="finished", path="/x/q1.mp4", start=ts,
                         end=ts + 2, duration=2.0, size=123, event_id="q1")
        wait_until(lambda: len(ha.on("pisentry/cam1/events")) == 2, 5, "events")
        new, end = (json.loads(p) for p in ha.on("pisentry/cam1/events"))
        assert new["type"] == "new" and new["event_id"] == "q1" and new["labels"] == ["person"]
        assert end["type"] == "end"
        assert ha.on("pisentry/cam1/motion") == [b"ON", b"OFF"]
        assert ha.on("pisentry/cam1/snapshot") == [photo]
        wait_until(lambda: ha.on("pisentry/cam1/recording"), 5, "recording")
        assert json.loads(ha.on("pisentry/cam1/recording")[0])["path"] == "/x/q1.mp4"

        # The switch in Home Assistant disarms the camera.
        ha.client.publish("pisentry/cam1/armed/set", "OFF", qos=1)
        state = h.wait_output(lambda m: isinstance(m.header, ArmState) and not m.header.armed)
        assert state.header.changed_by == "mqtt" and ArmingStore(h.home).load().armed is False
        wait_until(lambda: ha.on("pisentry/cam1/armed")[-1] == b"OFF", 5, "armed state OFF")
    finally:
        ha.stop()


def test_arming_from_the_web_reaches_mqtt(mosquitto: Mosquitto,
                                          harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"mqtt": {"enabled": True, "port": mosquitto.port}})
    wait_until(lambda: h.svc.mqtt.connected, 10, "notify to reach the broker")
    ha = Listener(mosquitto.port)
    try:
        wait_until(lambda: ha.on("pisentry/cam1/armed"), 5, "armed state")
        h.web.publish(Disarm, ts=time.time(), source="web")
        wait_until(lambda: ha.on("pisentry/cam1/armed")[-1] == b"OFF", 5, "armed OFF")
    finally:
        ha.stop()
