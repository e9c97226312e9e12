"""MQTT for Home Assistant (what Frigate users rely on).

Topics (``P`` = ``topic_prefix``, ``C`` = camera)::

    P/C/availability     "online" / "offline" (retained; the broker sends
                         "offline" itself when we vanish: last will)
    P/C/motion           "ON" / "OFF" (retained)
    P/C/events           JSON {"type": "new"|"update"|"end", "event_id", "ts",
                         "labels", "zones", "score", "boxes"}
    P/C/snapshot         the latest event JPEG (retained)
    P/C/recording        JSON {"path", "start", "end", "duration", "size", "event_id"}
    P/C/armed            "ON" / "OFF" (retained)
    P/C/armed/set        commands from Home Assistant: "ON" / "OFF"

Home Assistant discovery (retained, under ``discovery_prefix``): a
``binary_sensor`` (device_class motion), a ``camera`` fed by the snapshot topic
and a ``switch`` for arming, grouped as one device.

paho runs its own network thread (``loop_start``) and reconnects by itself;
``publish`` is safe from the service thread. Commands arrive on paho's thread
and are handed to the service through a callback that only queues them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

if TYPE_CHECKING:
    from common.config import MqttConfig

log = logging.getLogger(__name__)


def topics(cfg: MqttConfig, camera: str) -> dict[str, str]:
    base = f"{cfg.topic_prefix}/{camera}"
    return {name: f"{base}/{name}" for name in
            ("availability", "motion", "events", "snapshot", "recording", "armed")} | {
        "armed_set": f"{base}/armed/set"}


def discovery(cfg: MqttConfig, camera: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for each Home Assistant entity."""
    t = topics(cfg, camera)
    node = f"pisentry_{camera}"
    device = {"identifiers": [node], "name": f"pisentry {camera}", "manufacturer": "pisentry",
              "model": "Raspberry Pi camera"}
    common = {"availability_topic": t["availability"], "payload_available": "online",
              "payload_not_available": "offline", "device": device}
    return [
        (f"{cfg.discovery_prefix}/binary_sensor/{node}/motion/config",
         {**common, "name": "Motion", "unique_id": f"{node}_motion", "device_class": "motion",
          "state_topic": t["motion"], "payload_on": "ON", "payload_off": "OFF"}),
        (f"{cfg.discovery_prefix}/camera/{node}/snapshot/config",
         {**common, "name": "Snapshot", "unique_id": f"{node}_snapshot", "topic": t["snapshot"]}),
        (f"{cfg.discovery_prefix}/switch/{node}/arm/config",
         {**common, "name": "Armed", "unique_id": f"{node}_armed", "icon": "mdi:shield-home",
          "state_topic": t["armed"], "command_topic": t["armed_set"], "payload_on": "ON",
          "payload_off": "OFF", "state_on": "ON", "state_off": "OFF"}),
    ]


class MqttLink:
    def __init__(self, cfg: MqttConfig, camera: str,
                 on_arm: Callable[[bool], None]) -> None:
        self.cfg = cfg
        self.camera = camera
        self.on_arm = on_arm
        self.t = topics(cfg, camera)
        self.connected = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"pisentry-{camera}")
        if cfg.tls:
            self.client.tls_set(ca_certs=cfg.ca_file or None)
        elif cfg.password.get_secret_value() and cfg.host not in ("127.0.0.1", "::1",
                                                                  "localhost"):
            log.warning("mqtt: the broker password goes to %s unencrypted (set mqtt.tls)",
                        cfg.host)
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password.get_secret_value() or None)
        self.client.will_set(self.t["availability"], "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(1, 60)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._armed: bool | None = None

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        if self.connected:
            self.client.publish(self.t["availability"], "offline", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    # paho's thread ----------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt: broker %s:%d refused us: %s", self.cfg.host, self.cfg.port, reason)
            return
        self.connected = True
        log.info("mqtt: connected to %s:%d", self.cfg.host, self.cfg.port)
        # Everything below is retained or re-sent on each (re)connect, so a broker
        # restart loses nothing Home Assistant needs.
        if self.cfg.discovery:
            for topic, config in discovery(self.cfg, self.camera):
                client.publish(topic, json.dumps(config), qos=1, retain=True)
        client.publish(self.t["availability"], "online", qos=1, retain=True)
        if self._armed is not None:
            client.publish(self.t["armed"], "ON" if self._armed else "OFF", qos=1, retain=True)
        client.subscribe(self.t["armed_set"], qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: Any, properties: Any) -> None:
        self.connected = False
        if reason.is_failure:
            log.warning("mqtt: disconnected (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = msg.payload.decode(errors="replace").strip().upper()
        if msg.topic == self.t["armed_set"] and payload in ("ON", "OFF"):
            self.on_arm(payload == "ON")
        else:
            log.warning("mqtt: ignored %r on %s", payload[:20], msg.topic)

    # service thread ----------------------------------------------------------------
    def publish_json(self, name: str, body: dict[str, Any]) -> None:
        self.client.publish(self.t[name], json.dumps(body), qos=1)

    def motion(self, on: bool) -> None:
        self.client.publish(self.t["motion"], "ON" if on else "OFF", qos=1, retain=True)

    def snapshot(self, jpeg: bytes) -> None:
        self.client.publish(self.t["snapshot"], jpeg, qos=0, retain=True)

    def armed(self, armed: bool) -> None:
        self._armed = armed
        self.client.publish(self.t["armed"], "ON" if armed else "OFF", qos=1, retain=True)
