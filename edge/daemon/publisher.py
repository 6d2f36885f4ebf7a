"""Everything the daemon says on MQTT, and the commands it receives.

Topic root `<prefix>/<device_id>`:
  available        retained `online`; `offline` as last will and on clean stop
  events           QoS 1, not retained, through the on-disk outbox (at least once, in order)
  stats            periodic JSON, QoS 0
  gallery/set      commands (the only subscription, QoS 1, persistent session)
  gallery/response answers, QoS 1
  gallery/state    retained summary
  health           retained: ok | degraded | no_camera, with each camera's state (health.py)
  person/<slug>    retained presence per enrolled person; person/unknown for strangers
                   (the Home Assistant entities' state topics, see discovery.py)
Publishing never blocks the caller: events go to the outbox; a sender thread drains it.
"""
import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from edge.daemon.config import Config
from edge.daemon.discovery import UNKNOWN_SLUG, person_slug
from edge.daemon.events import iso_utc
from edge.daemon.mqtt_client import MqttClient, topic_matches
from edge.daemon.outbox import Entry, Outbox
from edge.daemon.telemetry import Telemetry

log = logging.getLogger(__name__)

IN_FLIGHT = 20          # events handed to paho and not yet acknowledged


class Publisher(object):
    def __init__(self, config, notifier=None, telemetry=None):
        # type: (Config, object, Optional[Telemetry]) -> None
        self.config = config
        self.notifier = notifier
        self.root = config.topic_root
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.outbox = Outbox(config.mqtt.queue_dir, config.mqtt.queue_max_events, config.mqtt.queue_full)
        self._client = MqttClient(config.mqtt, self.topic("available"), self._connected, self._disconnected,
                                  self._published, self._message)
        # Never hold a lock of ours while calling paho: paho calls on_publish holding its own
        # message lock, and publish() takes that lock (a deadlock otherwise).
        self._wake = threading.Event()
        self._produced_lock = threading.Lock()
        self._produced = {}  # type: Dict[int, float]   outbox id -> time.monotonic() when produced
        self._running = False
        self._health = None  # type: Optional[str]
        self._command_handler = None  # type: Optional[Callable[[bytes], None]]
        self._connect_hooks = []  # type: List[Callable[[], None]]
        self._subscriptions = []  # type: List[Tuple[str, Callable[[str, bytes], None]]]
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-outbox")
        self._sender.daemon = True
        self.published_events = 0
        self.last_latency_ms = None  # type: Optional[float]
        self.mean_latency_ms = None  # type: Optional[float]

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

    def on_connected(self, hook):
        # type: (Callable[[], None]) -> None
        """hook() after every (re)connect, on paho's thread: e.g. republish retained state."""
        self._connect_hooks.append(hook)

    def subscribe(self, topic_filter, handler):
        # type: (str, Callable[[str, bytes], None]) -> None
        """handler(topic, payload) for topic_filter (QoS 1, subscribed on every connect before the
        connect hooks run); called on paho's thread: hand work off quickly."""
        self._subscriptions.append((topic_filter, handler))

    def start(self):
        # type: () -> None
        self._running = True
        self._sender.start()
        self._client.start()

    # -- paho callbacks (network thread) --------------------------------------------------
    def _connected(self):
        # Subscribe before saying `online`: a client that sends a command as soon as it sees
        # `online` must not find the device not yet subscribed (the command would be lost).
        self._client.subscribe(self.topic("gallery/set"), qos=1)
        for topic_filter, _ in self._subscriptions:
            self._client.subscribe(topic_filter, qos=1)
        self._client.publish(self.topic("available"), "online", qos=1, retain=True)
        if self._health is not None:        # a broker restarted without persistence forgot it
            self._client.publish(self.topic("health"), self._health, qos=1, retain=True)
        for hook in self._connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("MQTT connect hook failed")
        self._wake.set()

    def _disconnected(self):
        self._wake.set()

    def _published(self, mid):
        self._wake.set()

    def _message(self, topic, payload):
        if topic == self.topic("gallery/set") and self._command_handler is not None:
            self._command_handler(payload)
            return
        for topic_filter, handler in self._subscriptions:
            if topic_matches(topic_filter, topic):
                handler(topic, payload)

    # -- the outbox sender ---------------------------------------------------------------
    @property
    def sender_alive(self):
        # type: () -> bool
        """The outbox sender runs: without it no event leaves the disk (part of health)."""
        return self._sender.is_alive()

    def _send_loop(self):
        # Each entry is handed to paho once; paho resends it after a reconnect until the
        # PUBACK, and only then is it removed from disk. After a restart, the outbox resends.
        in_flight = []  # type: List[Tuple[Any, Entry]]
        last_sent = [0]
        while self._running:
            self._wake.clear()
            try:
                self._send_round(in_flight, last_sent)
            except Exception:       # never let the sender die: the events would stay on disk
                log.exception("MQTT outbox sender round failed; retrying")
                time.sleep(0.5)
            self._wake.wait(0.5)

    def _send_round(self, in_flight, last_sent):
        # type: (List[Tuple[Any, Entry]], List[int]) -> None
        # PUBACKs may come out of order only across a reconnect: ack every one that came.
        for item in list(in_flight):
            done = self._delivered(item)
            if done is None:        # paho gave it up: it is still on disk, send it again
                in_flight.remove(item)
                last_sent[0] = min(last_sent[0], item[1].id - 1)
            elif done:
                in_flight.remove(item)
                self._acknowledged(item[1].id)
        if self._client.connected and len(in_flight) < IN_FLIGHT:
            sent = set(entry.id for _, entry in in_flight)
            for entry in self.outbox.peek(last_sent[0], IN_FLIGHT):
                if entry.id in sent:
                    continue
                if len(in_flight) >= IN_FLIGHT:
                    break
                info = self._client.publish_info(entry.topic, entry.payload, self.config.mqtt.qos or 1)
                if info is None:
                    break       # refused by paho (not a lost link): retried next round
                in_flight.append((info, entry))
                last_sent[0] = max(last_sent[0], entry.id)

    def _delivered(self, item):
        # type: (Tuple[Any, Entry]) -> Optional[bool]
        """True once acknowledged, False while pending, None when paho gave the message up."""
        try:
            return self._client.delivered(item[0])
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT publish of queued event %d failed (%s); sending it again", item[1].id, exc)
            return None

    def _acknowledged(self, entry_id):
        # type: (int) -> None
        self.outbox.ack(entry_id)
        self.published_events += 1
        with self._produced_lock:
            produced = self._produced.pop(entry_id, None)
        if produced is not None:
            # produced -> PUBACK: queueing, link and broker together.
            ms = (time.monotonic() - produced) * 1000.0
            self.last_latency_ms = ms
            self.mean_latency_ms = ms if self.mean_latency_ms is None else 0.9 * self.mean_latency_ms + 0.1 * ms

    # -- what the daemon publishes -------------------------------------------------------
    def publish_event(self, payload_json, produced_mono=None):
        # type: (str, Optional[float]) -> None
        """Queue on disk and return; produced_mono (time.monotonic()) feeds the publish latency."""
        entry_id = self.outbox.append(self.topic("events"), payload_json.encode("utf-8"))
        if entry_id is not None:
            with self._produced_lock:
                if len(self._produced) < 100000:
                    self._produced[entry_id] = time.monotonic() if produced_mono is None else produced_mono
        self._wake.set()

    def stats_extra(self):
        # type: () -> Dict[str, Any]
        """The transport's part of the stats: outbox and device telemetry."""
        return {"outbox": {"depth": self.outbox.depth, "capacity": self.outbox.capacity,
                           "dropped": self.outbox.dropped, "full_policy": self.outbox.full_policy,
                           "write_failures": self.outbox.write_failures, "error": self.outbox.last_error,
                           "connected": self.connected, "published": self.published_events,
                           "sender_alive": self.sender_alive,
                           "broker_anonymous": self._client.anonymous,
                           "publish_latency_ms": _round(self.mean_latency_ms),
                           "last_publish_latency_ms": _round(self.last_latency_ms)},
                "device": self.telemetry.snapshot()}

    def publish_stats(self, stats):
        # type: (Dict[str, Any]) -> None
        """stats: the service's snapshot; outbox and device telemetry are added here."""
        body = dict(stats)
        body.update(self.stats_extra())
        self._client.publish(self.topic("stats"), json.dumps(body, sort_keys=True, default=_plain), qos=0)

    def publish_state(self, payload_json):
        # type: (str) -> None
        self._client.publish(self.topic("gallery/state"), payload_json, qos=1, retain=True)

    def publish_response(self, payload_json):
        # type: (str) -> None
        self._client.publish(self.topic("gallery/response"), payload_json, qos=1)

    def presence_topic(self, name):
        # type: (Optional[str]) -> str
        return self.topic("person/" + (person_slug(name) if name else UNKNOWN_SLUG))

    def publish_presence(self, name, present, event=None):
        # type: (Optional[str], bool, Any) -> None
        """Retained presence of one person (name None: an unknown face), the Home Assistant
        entity's state. event: the Event (or its dict) that changed it, for camera/similarity."""
        body = {"present": bool(present), "name": name, "timestamp": iso_utc(time.time())}
        if event is not None:
            data = event.presence_fields() if hasattr(event, "presence_fields") else dict(event)
            for key in ("camera", "similarity", "event_id", "track_id", "timestamp", "unknown_id"):
                if key in data:
                    body[key] = data[key]
        self._client.publish(self.presence_topic(name), json.dumps(body, sort_keys=True), qos=1, retain=True)

    def publish_health(self, health):
        # type: (Dict[str, Any]) -> None
        """Retained `health` (edge.daemon.health), again after every reconnect."""
        self._health = json.dumps(health, sort_keys=True)
        self._client.publish(self.topic("health"), self._health, qos=1, retain=True)

    def publish_raw(self, topic, payload, retain=False, qos=1):
        # type: (str, str, bool, int) -> None
        """For Home Assistant discovery and other topics outside the event stream."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def drain(self, timeout_s):
        # type: (float) -> bool
        """Wait until every queued event was acknowledged (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while self.outbox.depth > 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.outbox.depth == 0

    def stop(self, drain_s=3.0):
        # type: (float) -> None
        if self.connected:
            self.drain(drain_s)
            info = self._client.publish_info(self.topic("available"), "offline", 1, retain=True)
            if info is not None:
                _wait_published(info, 2.0)
        self._running = False
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(2.0)
        self._client.stop()
        self.outbox.close()
        self.telemetry.close()


def _round(value):
    # type: (Optional[float]) -> Optional[float]
    return None if value is None else round(value, 1)


def _plain(value):
    # NamedTuples nest as dicts already; numpy scalars and the rest become numbers or text.
    if hasattr(value, "_asdict"):
        return value._asdict()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _wait_published(info, timeout_s):
    # paho 1.6's wait_for_publish has no timeout: poll instead.
    deadline = time.monotonic() + timeout_s
    while not info.is_published() and time.monotonic() < deadline:
        time.sleep(0.02)
