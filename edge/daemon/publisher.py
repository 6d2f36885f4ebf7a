"""Everything the daemon says on MQTT, and the commands it receives.

Topic root `<prefix>/<device_id>`:
  available        retained `online`; `offline` as last will and on clean stop
  events           QoS 1, not retained, through the on-disk outbox (at least once, in order)
  stats            periodic JSON, QoS 0
  gallery/set      commands (the only subscription)
  gallery/response answers, QoS 1
  gallery/state    retained summary
Publishing never blocks the caller: events go to the outbox; a sender thread drains it.
"""
import json
import logging
import threading
import time
from typing import Callable, Dict, Optional

from edge.daemon.config import Config
from edge.daemon.mqtt_client import MqttClient
from edge.daemon.outbox import Outbox

log = logging.getLogger(__name__)

IN_FLIGHT = 20


class Publisher(object):
    def __init__(self, config):
        # type: (Config) -> None
        self.config = config
        self.root = config.topic_root
        self.outbox = Outbox(config.mqtt.queue_dir, config.mqtt.queue_max_events)
        self._client = MqttClient(config.mqtt, self.topic("available"), self._connected, self._disconnected,
                                  self._published, self._message)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._in_flight = {}  # type: Dict[int, int]   mid -> outbox id
        self._last_sent = 0
        self._running = False
        self._command_handler = None  # type: Optional[Callable[[bytes], None]]
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-outbox")
        self._sender.daemon = True
        self.published_events = 0

    def topic(self, suffix):
        # type: (str) -> str
        return "{}/{}".format(self.root, suffix)

    @property
    def connected(self):
        # type: () -> bool
        return self._client.connected

    @property
    def last_error(self):
        # type: () -> Optional[str]
        return self._client.last_error

    def on_command(self, handler):
        # type: (Callable[[bytes], None]) -> None
        """handler(payload) for gallery/set; called on paho's thread: hand work off quickly."""
        self._command_handler = handler

    def start(self):
        # type: () -> None
        self._running = True
        self._sender.start()
        self._client.start()

    # -- paho callbacks (network thread) --------------------------------------------------
    def _connected(self):
        self._client.publish(self.topic("available"), "online", qos=1, retain=True)
        self._client.subscribe(self.topic("gallery/set"), qos=1)
        with self._wake:
            # Whatever was in flight when the link dropped is sent again (at least once).
            self._in_flight.clear()
            self._last_sent = 0

    def _disconnected(self):
        with self._wake:
            self._wake.notify_all()

    def _published(self, mid):
        # Also the wake-up after a (re)connect: paho acknowledges the `online` publish.
        with self._wake:
            entry_id = self._in_flight.pop(mid, None)
            if entry_id is not None:
                self.outbox.ack(entry_id)
                self.published_events += 1
            self._wake.notify_all()

    def _message(self, topic, payload):
        if topic == self.topic("gallery/set") and self._command_handler is not None:
            self._command_handler(payload)

    # -- the outbox sender ---------------------------------------------------------------
    def _send_loop(self):
        while True:
            with self._wake:
                while self._running and (not self._client.connected or len(self._in_flight) >= IN_FLIGHT
                                         or self.outbox.depth <= len(self._in_flight)):
                    self._wake.wait(0.5)
                if not self._running:
                    return
                batch = self.outbox.peek(self._last_sent, IN_FLIGHT - len(self._in_flight))
                for entry in batch:
                    mid = self._client.publish(entry.topic, entry.payload, qos=self.config.mqtt.qos or 1)
                    if mid is None:
                        break  # link lost meanwhile; resent after reconnect
                    self._in_flight[mid] = entry.id
                    self._last_sent = entry.id
                if not batch:
                    self._wake.wait(0.5)

    # -- what the daemon publishes -------------------------------------------------------
    def publish_event(self, payload_json):
        # type: (str) -> None
        with self._wake:
            self.outbox.append(self.topic("events"), payload_json.encode("utf-8"))
            self._wake.notify_all()

    def publish_stats(self, stats):
        # type: (dict) -> None
        stats = dict(stats, outbox={"depth": self.outbox.depth, "capacity": self.outbox.capacity,
                                    "dropped": self.outbox.dropped, "connected": self.connected})
        self._client.publish(self.topic("stats"), json.dumps(stats), qos=0)

    def publish_state(self, payload_json):
        # type: (str) -> None
        self._client.publish(self.topic("gallery/state"), payload_json, qos=1, retain=True)

    def publish_response(self, payload_json):
        # type: (str) -> None
        self._client.publish(self.topic("gallery/response"), payload_json, qos=1)

    def publish_raw(self, topic, payload, retain=False, qos=1):
        # type: (str, str, bool, int) -> None
        """For Home Assistant discovery and presence topics outside the event stream."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def drain(self, timeout_s):
        # type: (float) -> bool
        """Wait until every queued event was acknowledged (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while self.outbox.depth > 0 and time.monotonic() < deadline:
                self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
            return self.outbox.depth == 0

    def stop(self, drain_s=3.0):
        # type: (float) -> None
        if self.connected:
            self.drain(drain_s)
            info = self._client.client.publish(self.topic("available"), "offline", qos=1, retain=True)
            _wait_published(info, 2.0)
        with self._wake:
            self._running = False
            self._wake.notify_all()
        self._client.stop()
        if self._sender.is_alive():
            self._sender.join(2.0)
        self.outbox.close()


def _wait_published(info, timeout_s):
    # paho 1.6's wait_for_publish has no timeout: poll instead.
    deadline = time.monotonic() + timeout_s
    while not info.is_published() and time.monotonic() < deadline:
        time.sleep(0.02)
