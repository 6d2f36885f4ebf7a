"""The matcher, rebuilt off the loop thread whenever the gallery changes.

The gallery notifies (`Gallery.add_listener`) after every committed change in this process;
a change by another process (the `faceedge gallery` CLI on the same file) is seen by polling
the version every POLL_S, on this thread too. The loop only takes the newest matcher
(`take`, a reference swap): it never reads SQLite nor waits for the gallery's lock, so an
enrollment that holds the gallery for seconds does not delay frames.

The threshold is the open-set rule's (edge.open_set.RuleSource): derived again from
recognition.false_match_rate, the model and the number of enrolled people for every gallery
version, so each new matcher carries the threshold for the gallery it was built from.
"""
import logging
import threading
import time
from typing import NamedTuple, Optional

log = logging.getLogger("faceedge.matcher")

POLL_S = 1.0

Built = NamedTuple("Built", [
    ("matcher", object),     # edge.matching.Matcher
    ("version", int),        # the gallery version it was built from
    ("summary", object),     # edge.gallery.store.Summary at that version (for stats)
    ("rule", object),        # edge.open_set.Rule the matcher's threshold came from
    ("recognition", dict),   # RuleSource.state(rule) at that version (for stats)
])


class MatcherUpdates(object):
    def __init__(self, gallery, rules, poll_s=POLL_S):
        # type: (object, object, float) -> None
        """rules: edge.open_set.RuleSource for the active model over this gallery."""
        self.gallery = gallery
        self.rules = rules
        self.fingerprint = rules.fingerprint
        self.poll_s = poll_s
        self._lock = threading.Lock()       # guards _fresh only: never held while building
        self._fresh = None                  # type: Optional[Built]
        self.latest = None                  # type: Optional[Built]
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = None                 # type: Optional[threading.Thread]

    def start(self):
        # type: () -> Built
        """Build the first matcher now (before the loop runs), then watch for changes."""
        first = self._build()
        self._thread = threading.Thread(target=self._run, name="matcher-updates")
        self._thread.daemon = True
        self._thread.start()
        return first

    def changed(self, *_):
        # type: (*object) -> None
        """The gallery changed (any thread): rebuild soon."""
        self._wanted.set()

    def rebuild(self, false_match_rate, override=None):
        # type: (float, Optional[float]) -> None
        """New settings (reload): recognition.false_match_rate and recognition.threshold (the
        override, 0/None: derive); rebuild even if the gallery did not change."""
        self.rules.configure(false_match_rate, override)
        self._wanted.set()

    def take(self):
        # type: () -> Optional[Built]
        """The matcher built since the last take, or None (the loop's only call)."""
        with self._lock:
            fresh, self._fresh = self._fresh, None
        return fresh

    def stop(self):
        # type: () -> None
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self):
        while not self._stop.is_set():
            wanted = self._wanted.wait(self.poll_s)
            if self._stop.is_set():
                return
            self._wanted.clear()
            try:
                if wanted or self.gallery.version != self.latest.version:
                    built = self._build()
                    with self._lock:
                        self._fresh = built
            except Exception:      # a broken read must not end the updates: the old matcher stays
                log.exception("rebuilding the matcher failed; keeping the previous one")
                time.sleep(self.poll_s)

    def _build(self):
        # type: () -> Built
        # summary first: a change landing in between makes the version differ, and the next poll rebuilds
        summary = self.gallery.summary()
        matcher, rule = self.rules.matcher(self.gallery)
        built = Built(matcher, summary.version, summary, rule, self.rules.state(rule))
        self.latest = built
        log.info("matcher loaded (gallery version %s, threshold %.4f)", summary.version, rule.threshold)
        return built
