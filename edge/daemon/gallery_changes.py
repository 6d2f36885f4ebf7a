"""What follows a gallery change in the daemon: the retained `gallery/state`, Home Assistant
discovery per person and the retained threshold report; and the same again after every
(re)connect, since the broker may have lost retained messages."""
import json
import logging
from typing import Callable, Optional

log = logging.getLogger("faceedge.commands")


class GalleryChanges(object):
    def __init__(self, gallery, publisher=None, discovery=None, report=None, on_change=None, recognition=None):
        # type: (object, object, object, object, Optional[Callable[[str, str], None]], Optional[Callable[[], dict]]) -> None
        """publisher: publish_state(payload); discovery: edge.daemon.discovery.Discovery;
        report: edge.daemon.report_publisher.ReportPublisher; on_change(action, name): any listener.
        recognition() -> the open-set rule for this gallery (edge.open_set.RuleSource.state).
        Each is optional (a test, or a daemon without Home Assistant)."""
        self.gallery = gallery
        self.publisher = publisher
        self.discovery = discovery
        self.report = report
        self.on_change = on_change
        self.recognition = recognition

    def state_json(self):
        # type: () -> str
        s = self.gallery.summary()
        state = {"people": s.people, "samples": s.samples, "negatives": s.negatives,
                 "version": s.version, "fingerprints": list(s.fingerprints),
                 "names": [p.name for p in self.gallery.list_people()]}
        if self.recognition is not None:
            state["recognition"] = self.recognition()
        return json.dumps(state, sort_keys=True)

    def announce(self):
        # type: () -> None
        """Retained state and discovery for everyone (after each (re)connect, on paho's thread)."""
        try:
            if self.publisher is not None:
                self.publisher.publish_state(self.state_json())
            if self.discovery is not None:
                self.discovery.publish_all([p.name for p in self.gallery.list_people()])
        except Exception as exc:     # never take the network thread down
            log.error("publishing the gallery state failed: %s", exc)

    def renamed(self, old, new):
        # type: (str, str) -> None
        if self.discovery is not None and new != old:
            self.discovery.person_removed(old)
        self.after("rename", new)

    def after(self, action, name, removed=False):
        # type: (str, str, bool) -> None
        """After a committed change (command worker or live-enrollment thread, never the frame loop)."""
        if self.discovery is not None:
            try:
                if removed:
                    self.discovery.person_removed(name)
                else:
                    self.discovery.person_added(name)
            except Exception as exc:
                log.error("Home Assistant discovery for %r failed: %s", name, exc)
        if self.publisher is not None:
            try:
                self.publisher.publish_state(self.state_json())
            except Exception as exc:
                log.error("publishing the gallery state failed: %s", exc)
        if self.report is not None:
            self.report.changed()
        if self.on_change is not None:
            self.on_change(action, name)
