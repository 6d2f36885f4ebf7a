"""The sync engine: local changes -> retained messages, retained messages -> local changes.

No MQTT in here: publish(suffix, payload) puts a retained message under the gallery's root
(b"" clears it). One lock serialises everything (the command worker's local changes and the
sync worker's messages).

Rules (docs/MANY_DOORS.md):
- a version is (revision, removed, writer); the greater wins everywhere, so every device ends
  with the same people whatever order messages arrive in;
- absence never deletes: only a tombstone (the manifest's "removed", or an empty person
  message) does. A broker that lost its retained messages therefore deletes nobody;
- a writer that sees the broker hold less than it knows (an older person, a manifest without
  someone) republishes what it has: bridged sites and restarted brokers heal themselves.
"""
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from edge.sharing.format import (Manifest, SharedFormatError, decode_manifest, decode_person, encode_manifest,
                                 encode_person, manifest_revision, valid_id, version_key)
from edge.sharing.state import SharedState, Version, version_order

log = logging.getLogger(__name__)

MAX_PENDING = 1000       # requests remembered for a conflict answer


class SyncEngine(object):
    def __init__(self, state, me, writer, publish, reembed=None, respond=None, on_change=None, fingerprints=None):
        # type: (SharedState, str, bool, Callable[[str, bytes], None], Optional[Callable[[], object]], Optional[Callable[[str, str, dict], None]], Optional[Callable[[], None]], Optional[Callable[[], List[str]]]) -> None
        """me: this device's id (the writer id); writer: may publish (gallery.shared_writer);
        reembed(): embed kept crops that lack this device's fingerprint; respond(request_id, error,
        conflict): tell a request that its change lost; on_change(): the local gallery changed;
        fingerprints(): the models whose embeddings the local gallery holds."""
        self.state = state
        self.me = me
        self.writer = writer
        self._publish = publish
        self._reembed = reembed
        self._respond = respond
        self._on_change = on_change
        self._fingerprints = fingerprints or (lambda: [])
        self._lock = threading.RLock()
        self._pending = {}  # type: Dict[str, str]        uid -> request id of this device's last change
        self.manifest = None  # type: Optional[Manifest]   the newest manifest received or published
        self._manifest_since_connect = False
        self.warning = None  # type: Optional[str]
        self.conflicts = 0
        self.applied = 0

    # -- local side -------------------------------------------------------------------------
    def local_changed(self, request_id=None):
        # type: (Optional[str]) -> Dict[str, int]
        """Local changes (any path) -> new revisions, published person by person, then the
        manifest. Returns {uid: revision} of what changed."""
        if not self.writer:
            return {}
        with self._lock:
            changed = self.state.reconcile(self.me)
            if not changed:
                return {}
            view = self.state.view()
            for uid in changed:
                if request_id is not None:
                    self._remember(uid, request_id)
                self._publish_person(uid)
            self._publish_manifest(view)
            return dict((uid, view[uid].revision) for uid in changed)

    def _remember(self, uid, request_id):
        self._pending.pop(uid, None)
        self._pending[uid] = request_id
        while len(self._pending) > MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))

    def _publish_person(self, uid):
        # type: (str) -> None
        message = self.state.message(uid)
        self._publish("person/" + uid, encode_person(message) if message is not None else b"")

    def _publish_manifest(self, view):
        # type: (Dict[str, Version]) -> None
        manifest = self._manifest_of(view)
        self._publish("manifest", encode_manifest(manifest))
        self.manifest = manifest

    def _manifest_of(self, view):
        # type: (Dict[str, Version]) -> Manifest
        people = dict((uid, v.revision) for uid, v in view.items() if not v.removed)
        removed = dict((uid, v.revision) for uid, v in view.items() if v.removed)
        return Manifest(self.state.shared_id, manifest_revision(people, removed), self.me, time.time(),
                        sorted(self._fingerprints()), people, removed)

    # -- remote side ------------------------------------------------------------------------
    def connected(self):
        # type: () -> None
        """A (re)connect: the retained messages follow, then on_retained_done()."""
        with self._lock:
            self._manifest_since_connect = False
            self.manifest = None        # in sync means with what this broker holds now

    def on_person(self, uid, payload):
        # type: (str, bytes) -> None
        if not valid_id(uid):
            log.warning("shared gallery: ignoring person topic with a bad id %r", uid[:80])
            return
        with self._lock:
            local = self.state.view().get(uid)
            if not payload:
                self._cleared(uid, local)
                return
            try:
                message = decode_person(payload, uid)
            except SharedFormatError as exc:
                log.warning("shared gallery: ignoring a message: %s", exc)
                return
            incoming = version_key(message.revision, False, message.changed_by)
            if local is not None and incoming <= version_order(local):
                if incoming < version_order(local) and self.writer:
                    self._publish_person(uid)       # the broker holds an older version: heal it
                return
            reason = self.state.apply(message)
            if reason is not None:
                log.error("shared gallery: cannot apply %s revision %d (%r): %s", uid, message.revision,
                          message.name, reason)
                return
            self.applied += 1
            log.info("shared gallery: %s %r revision %d by %s", "updated" if local else "added", message.name,
                     message.revision, message.changed_by)
            self._lost(uid, local, message.revision, message.changed_by, "changed")
            self._changed()

    def _cleared(self, uid, local):
        # type: (str, Optional[Version]) -> None
        """An empty person message: a removal newer than anything this device holds."""
        if local is None or local.removed:
            return
        revision = max(local.revision + 1, (self.manifest.removed.get(uid, 0) if self.manifest else 0))
        if self.state.remove(uid, revision, ""):
            log.info("shared gallery: person %s removed (revision %d)", uid, revision)
            self._changed()

    def on_manifest(self, payload):
        # type: (bytes) -> None
        try:
            manifest = decode_manifest(payload)
        except SharedFormatError as exc:
            log.warning("shared gallery: ignoring a manifest: %s", exc)
            return
        if manifest.gallery != self.state.shared_id:
            log.warning("shared gallery: ignoring a manifest of gallery %r", manifest.gallery)
            return
        with self._lock:
            self.manifest = manifest
            self._manifest_since_connect = True
            if self.warning and manifest.people:
                self.warning = None
            view = self.state.view()
            removed_any = False
            for uid, revision in sorted(manifest.removed.items()):
                local = view.get(uid)
                if local is None or version_key(revision, True, "\uffff") > version_order(local):
                    if self.state.remove(uid, revision, local.writer if local else "", manifest.published_at):
                        log.info("shared gallery: person %s removed (revision %d)", uid, revision)
                        self._lost(uid, local, revision, manifest.writer, "removed")
                        removed_any = True
            if removed_any:
                self._changed()

    def on_retained_done(self):
        # type: () -> None
        """Every retained message was delivered after a (re)connect: catch up and check the broker."""
        with self._lock:
            if not self._manifest_since_connect:
                live = self.state.live_count()
                if live:
                    self.warning = ("the broker holds no manifest for shared gallery {!r} while this device holds "
                                    "{} shared people: the broker lost its retained messages (persistence off, or "
                                    "its store deleted); keeping the local gallery{}".format(
                                        self.state.shared_id, live, ", republishing it (this device is a writer)"
                                        if self.writer else " until a writer republishes it"))
                    log.warning("shared gallery: %s", self.warning)
                    if self.writer:
                        view = self.state.view()
                        for uid, version in sorted(view.items()):
                            if not version.removed:
                                self._publish_person(uid)
                        self._publish_manifest(view)
            self.local_changed()
            self.flush()

    def flush(self):
        # type: () -> None
        """After a batch of messages: a writer republishes what the broker's manifest lacks."""
        if not self.writer:
            return
        with self._lock:
            if self.manifest is None:
                return
            view = self.state.view()
            ahead, behind = _compare(view, self.manifest)
            for uid in ahead:
                if uid not in self.manifest.people and uid not in self.manifest.removed:
                    if not view[uid].removed:
                        self._publish_person(uid)     # a person the other side never saw (a bridge was down)
                elif view[uid].removed:
                    self._publish("person/" + uid, b"")
                else:
                    self._publish_person(uid)
            if ahead and not behind:
                self._publish_manifest(view)

    # -- outcomes ---------------------------------------------------------------------------
    def _lost(self, uid, local, revision, winner, what):
        # type: (str, Optional[Version], int, str, str) -> None
        """This device's own change lost against one made at the same time (the same revision,
        made without knowing ours): tell the request that made it."""
        if local is None or local.writer != self.me or local.removed or revision != local.revision:
            return
        request_id = self._pending.pop(uid, None)
        if request_id is None:
            return
        self.conflicts += 1
        error = ("superseded: another device changed the same person at the same time; {} by {} won (revision "
                 "{}) over this change (revision {} by {}) and every device holds the winner now".format(
                     "the removal" if what == "removed" else "the change", winner or "another device", revision,
                     local.revision, self.me))
        log.warning("shared gallery: request %s %s", request_id, error)
        if self._respond is not None:
            self._respond(request_id, error, {"person_id": uid, "revision": revision, "winner": winner,
                                              "loser": self.me, "action": what})

    def _changed(self):
        if self._reembed is not None:
            try:
                self._reembed()
            except Exception:      # a model failure must not stop the sync; the crop stays for later
                log.exception("shared gallery: re-embedding shared crops failed")
        if self._on_change is not None:
            self._on_change()

    def status(self):
        # type: () -> dict
        with self._lock:
            view = self.state.view()
            local = self._manifest_of(view)
            manifest = self.manifest
            return {"gallery": self.state.shared_id, "writer": self.writer,
                    "people": len(local.people), "removed": len(local.removed),
                    "local_revision": local.revision,
                    "manifest_revision": manifest.revision if manifest else None,
                    "in_sync": manifest is not None and _compare(view, manifest) == ([], []),
                    "applied": self.applied, "conflicts": self.conflicts, "warning": self.warning}


def _compare(view, manifest):
    # type: (Dict[str, Version], Manifest) -> Tuple[List[str], List[str]]
    """(uids where this device is ahead of the manifest, uids where it is behind)."""
    ahead, behind = [], []
    for uid in sorted(set(view) | set(manifest.people) | set(manifest.removed)):
        mine = (view[uid].revision, 1 if view[uid].removed else 0) if uid in view else (0, 0)
        theirs = max((manifest.people.get(uid, 0), 0), (manifest.removed.get(uid, 0), 1))
        if mine > theirs:
            ahead.append(uid)
        elif mine < theirs:
            behind.append(uid)
    return ahead, behind
