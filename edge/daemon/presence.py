"""Who is in view now: retained `person/<slug>` (and `person/unknown`) from the track events.

A person is present while at least one open track (on any camera) is decided as them; the
state topic changes only when that count goes from 0 to 1 or back, so Home Assistant's
binary sensors (discovery.py) switch once per visit, not once per event. After every
(re)connect the whole picture is republished: retained states left by a crash are corrected.
"""
import logging
import threading
from typing import Callable, Dict, Iterable, Optional

log = logging.getLogger(__name__)


class Presence(object):
    def __init__(self, publish, enrolled):
        # type: (Callable[[Optional[str], bool, object], None], Callable[[], Iterable[str]]) -> None
        """publish(name, present, event): Publisher.publish_presence; enrolled(): the names."""
        self._publish = publish
        self._enrolled = enrolled
        self._lock = threading.Lock()
        self._identity = {}   # type: Dict[str, Optional[str]]   open track -> its announced identity
        self._count = {}      # type: Dict[Optional[str], int]

    def present(self, name):
        # type: (Optional[str]) -> bool
        with self._lock:
            return self._count.get(name, 0) > 0

    def observe(self, event):
        # type: (object) -> None
        """An Event (new / update / end) that was just published."""
        changes = []
        with self._lock:
            before = self._identity.get(event.track_id, _ABSENT)
            after = _ABSENT if event.type == "end" else event.identity
            if before is not _ABSENT and before == after:
                return        # e.g. the same person became confident
            if before is not _ABSENT:
                del self._identity[event.track_id]
                if self._leave(before):
                    changes.append((before, False))
            if after is not _ABSENT:
                self._identity[event.track_id] = after
                if self._enter(after):
                    changes.append((after, True))
        for name, present in changes:
            self._send(name, present, event)

    def republish(self):
        # type: () -> None
        """Everyone enrolled and the unknown face, as they are now (after each connect)."""
        try:
            names = list(self._enrolled())
        except Exception as exc:
            log.error("reading the gallery for presence failed: %s", exc)
            names = []
        with self._lock:
            states = dict((name, self._count.get(name, 0) > 0) for name in names + [None])
            states.update((name, True) for name, count in self._count.items() if count > 0)
        for name, present in states.items():
            self._send(name, present, None)

    def _enter(self, name):
        # type: (Optional[str]) -> bool
        self._count[name] = self._count.get(name, 0) + 1
        return self._count[name] == 1

    def _leave(self, name):
        # type: (Optional[str]) -> bool
        self._count[name] = self._count.get(name, 0) - 1
        if self._count[name] <= 0:
            del self._count[name]
            return True
        return False

    def _send(self, name, present, event):
        try:
            self._publish(name, present, event)
        except Exception as exc:     # presence is a convenience; recognition goes on
            log.error("publishing presence of %s failed: %s", name or "unknown", exc)


_ABSENT = object()
