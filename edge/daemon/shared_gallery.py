"""The shared gallery on MQTT (gallery.shared_id; docs/MANY_DOORS.md): subscriptions, the sync
worker, the retained status, and the command wrapper that publishes each local change.

Topics under `<prefix>/_gallery/<shared_id>/`: `person/<person_id>` and `manifest` (retained).
The device's own root: `gallery/shared` (retained sync status) and `gallery/shared/marker`: after
each (re)connect the device publishes a token there after subscribing; the broker delivers it
after every retained message of the subscription, so its arrival means "caught up".
Matching never waits for any of this: the loop reads the local SQLite gallery only.
"""
import json
import logging
import os
import queue
import threading
from typing import Callable, Optional

from edge.daemon.command_router import response_json
from edge.sharing.state import SharedState
from edge.sharing.sync import SyncEngine

log = logging.getLogger(__name__)

POLL_S = 2.0       # how often a change made outside the daemon (the CLI) is looked for
CHANGES = ("enroll", "negative", "remove", "rename", "enroll_live", "name", "forget", "wrong", "ignore")


class SharedGallery(object):
    def __init__(self, config, gallery, pipeline, publisher, on_change=None):
        # type: (object, object, object, object, Optional[Callable[[], None]]) -> None
        self.shared_id = config.gallery.shared_id
        self.writer = config.gallery.shared_writer
        self.root = "{}/_gallery/{}".format(config.mqtt.prefix, self.shared_id)
        self.gallery = gallery
        self.publisher = publisher
        fingerprint = pipeline.recognizer_fingerprint
        self.engine = SyncEngine(
            SharedState(gallery, self.shared_id), config.device_id, self.writer, self._publish,
            reembed=lambda: gallery.reembed(fingerprint, pipeline.embed_crops),
            respond=self._lost, on_change=on_change, fingerprints=lambda: gallery.summary().fingerprints)
        self._queue = queue.Queue()  # type: queue.Queue
        self._marker = publisher.topic("gallery/shared/marker")
        self._token = None  # type: Optional[str]
        self._connections = 0
        self._caught_up = False
        self._last_status = None  # type: Optional[str]
        self._version = None  # type: Optional[int]
        publisher.subscribe(self.root + "/#", self._message)
        publisher.subscribe(self._marker, self._message)
        publisher.on_connected(self._connected)
        self._thread = threading.Thread(target=self._work, name="shared-gallery")
        self._thread.daemon = True

    def start(self):
        # type: () -> None
        log.info("shared gallery %r on %s/# (%s)", self.shared_id, self.root,
                 "writer" if self.writer else "reader: changes are refused here")
        self._thread.start()

    def stop(self):
        # type: () -> None
        self._queue.put(None)

    def poke(self):
        # type: () -> None
        """The local gallery changed outside a command (live enrollment): publish it."""
        self._queue.put(("local", None, None))

    # -- paho's thread: hand over ------------------------------------------------------------
    def _connected(self):
        self._connections += 1
        self._token = "{}-{}".format(os.getpid(), self._connections)
        self._queue.put(("connected", None, None))
        self.publisher.publish_raw(self._marker, self._token, qos=1)

    def _message(self, topic, payload):
        self._queue.put(("message", topic, payload))

    def _publish(self, suffix, payload):
        self.publisher.publish_raw("{}/{}".format(self.root, suffix), payload, retain=True, qos=1)

    def _lost(self, request_id, error, conflict):
        body = response_json(request_id, False, error=error, conflict=conflict)
        self.engine.state.replace_response(request_id, body)
        self.publisher.publish_response(body)

    # -- the sync worker -----------------------------------------------------------------------
    def _work(self):
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                item = ("poll", None, None)
            if item is None:
                return
            try:
                self._handle(*item)
                if self._queue.empty():
                    self.engine.flush()
                    self._publish_status()
            except Exception:       # one bad message must not end the sync
                log.exception("shared gallery: handling %s failed", item[0])

    def _handle(self, kind, topic, payload):
        if kind == "connected":
            self._caught_up = False
            self._last_status = None     # a broker that lost its retained messages gets it again
            self.engine.connected()
        elif kind == "message" and topic == self._marker:
            if payload.decode("utf-8", "replace") == self._token:
                self.engine.on_retained_done()
                self._caught_up = True
                log.info("shared gallery %r: caught up with the broker (%d people)", self.shared_id,
                         self.engine.state.live_count())
        elif kind == "message":
            suffix = topic[len(self.root) + 1:]
            if suffix == "manifest":
                self.engine.on_manifest(payload)
            elif suffix.startswith("person/"):
                self.engine.on_person(suffix[len("person/"):], payload)
        elif self._caught_up and (kind == "local" or self.gallery.version != self._version):
            self.engine.local_changed()      # e.g. `faceedge enroll` while the daemon runs
        self._version = self.gallery.version

    def _publish_status(self):
        body = self.engine.status()
        body["caught_up"] = self._caught_up      # subscribed and every retained message handled
        status = json.dumps(body, sort_keys=True)
        if status != self._last_status:
            self._last_status = status
            self.publisher.publish_raw(self.publisher.topic("gallery/shared"), status, retain=True, qos=1)

    # -- gallery commands ------------------------------------------------------------------------
    def wrap(self, router):
        # type: (object) -> None
        """The shared gallery's rules around every command of router (edge.daemon.command_router)."""
        router.wrap(_SharedCommands(router.limits, self).handle)


class _SharedCommands(object):
    """The command rules on a shared gallery: a reader refuses changes; a writer publishes the
    change (person, then manifest) before the answer, which carries the shared revision."""

    def __init__(self, limits, shared):
        self.limits = limits
        self.shared = shared

    def handle(self, payload, route):
        # type: (bytes, Callable[[bytes], Optional[str]]) -> Optional[str]
        limits = self.limits
        command = _peek(payload) if limits is None or len(payload) <= limits.max_payload_bytes else {}
        action, request_id = command.get("action"), command.get("request_id")
        if not isinstance(request_id, str):
            request_id = None
        if action in CHANGES and not self.shared.writer:
            return response_json(request_id, False, error="this device only reads the shared gallery {!r} "
                                 "(gallery.shared_writer = false): make the change on a writer".format(
                                     self.shared.shared_id))
        response = route(payload)
        if action not in CHANGES or response is None:
            return response
        changed = self.shared.engine.local_changed(request_id)
        if not changed:
            return response
        try:
            body = json.loads(response)
        except ValueError:
            return response
        if body.get("ok"):
            body["shared"] = {"gallery": self.shared.shared_id,
                              "people": [{"person_id": uid, "revision": rev} for uid, rev in sorted(changed.items())]}
        return json.dumps(body, sort_keys=True)


def _peek(payload):
    # type: (object) -> dict
    """The action and request id, if the payload is a JSON object (the handler judges the rest)."""
    try:
        command = json.loads(payload.decode("utf-8") if isinstance(payload, bytes) else payload)
    except (ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        return {}
    return command if isinstance(command, dict) else {}
