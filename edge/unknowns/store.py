"""Unknown identities in the gallery's SQLite file (their own tables), so that naming one
moves its crops into the gallery's samples in one transaction.

Per identity: first/last seen, visits, cameras, ignored; per kept track: camera, times and
its best few crops (PNG) with their embeddings. Bounded: at most `max_tracks` tracks (the
oldest dropped first) and none older than `keep_days`; an identity left without tracks goes
too. Ignored identities keep the tracks they have (they are how the face is recognised as
ignored) and are dropped only by `forget`. Ids (`u-<n>`) are never reused (AUTOINCREMENT).
"""
import json
import re
import sqlite3
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.gallery.store import Sample, _vector_bytes, decode_crop, encode_crop

DAY_S = 86400.0
_LABEL = re.compile(r"^u-([1-9][0-9]{0,17})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS unknown_identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    visits INTEGER NOT NULL DEFAULT 0, cameras TEXT NOT NULL DEFAULT '[]', ignored INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS unknown_tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_id INTEGER NOT NULL REFERENCES unknown_identities(id) ON DELETE CASCADE,
    track_id TEXT NOT NULL, camera TEXT NOT NULL, started REAL NOT NULL, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS unknown_tracks_identity ON unknown_tracks(identity_id);
CREATE INDEX IF NOT EXISTS unknown_tracks_seen ON unknown_tracks(seen);
CREATE TABLE IF NOT EXISTS unknown_crops (
    id INTEGER PRIMARY KEY,
    track_row INTEGER NOT NULL REFERENCES unknown_tracks(id) ON DELETE CASCADE,
    crop BLOB, quality REAL NOT NULL, fingerprint TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS unknown_crops_track ON unknown_crops(track_row);
INSERT OR IGNORE INTO meta(key, value) VALUES ('unknowns_version', 0);
"""

KeptFace = NamedTuple("KeptFace", [
    ("crop", Optional[np.ndarray]),   # 112x112x3 aligned BGR crop
    ("embedding", np.ndarray),        # L2-normalised
    ("quality", float),
])

UnknownIdentity = NamedTuple("UnknownIdentity", [
    ("unknown_id", str),
    ("first_seen", float),
    ("last_seen", float),
    ("visits", int),
    ("cameras", List[str]),
    ("ignored", bool),
    ("tracks", int),      # kept tracks
    ("crops", int),       # kept crops
])

IdentityVectors = NamedTuple("IdentityVectors", [
    ("vectors", np.ndarray),       # N x D
    ("identity_ids", np.ndarray),  # N int64
    ("labels", List[str]),         # by row: "u-<n>"
    ("ignored", np.ndarray),       # N bool
])


def label(identity_id):
    # type: (int) -> str
    return "u-{}".format(int(identity_id))


def parse_label(value):
    # type: (object) -> int
    match = _LABEL.match(value) if isinstance(value, str) else None
    if match is None:
        raise GalleryError("unknown_id must look like \"u-12\", got {!r}".format(value))
    return int(match.group(1))


def has_unknowns(gallery):
    # type: (object) -> bool
    """Whether the gallery file has the unknowns' tables (a reader need not create them)."""
    with gallery._lock:
        return bool(gallery._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                        "name='unknown_crops'").fetchone())


class UnknownStore(object):
    """The unknowns' tables in a Gallery's database. clock(): epoch seconds (tests control it)."""

    def __init__(self, gallery, max_tracks=500, keep_days=30.0, clock=time.time):
        # type: (object, int, float, Callable[[], float]) -> None
        self.gallery = gallery
        self.max_tracks = int(max_tracks)
        self.keep_days = float(keep_days)
        self.clock = clock
        self._migrate()

    # -- plumbing: the gallery's connection, lock and transactions ----------------------------
    def _migrate(self):
        # Existing galleries get the tables on first open; the write lock only when missing.
        with self.gallery._lock:
            db = self.gallery._db
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='unknown_crops'").fetchone():
                return
            try:
                db.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise GalleryError("could not add the unknown-faces tables to {}: {}".format(self.gallery.path, exc))

    def _read(self, sql, args=()):
        with self.gallery._lock:
            return self.gallery._db.execute(sql, args).fetchall()

    def _write(self, apply, request_id=None, respond=None, gallery_change=False):
        """One transaction. gallery_change: an action (the gallery's version changes, and the
        request id is kept with the response, so a repeated request is not applied twice)."""
        def counted(db):
            result = apply(db)
            db.execute("UPDATE meta SET value = value + 1 WHERE key='unknowns_version'")
            return result
        if gallery_change:
            return self.gallery._change(request_id, counted, respond)
        with self.gallery._transaction() as db:
            return counted(db)

    @property
    def version(self):
        # type: () -> int
        """Changes with every write here, in any process: the daemon's index reloads on it."""
        rows = self._read("SELECT value FROM meta WHERE key='unknowns_version'")
        return int(rows[0][0]) if rows else 0

    # -- the daemon's writes -------------------------------------------------------------------
    def save_track(self, unknown_id, track_id, camera, started, faces, fingerprint, row=None, now=None):
        # type: (Optional[str], str, str, float, Sequence[KeptFace], str, Optional[int], Optional[float]) -> Optional[Tuple[str, int]]
        """Keep (or, given its row, replace) one track's best faces under unknown_id (None: a new
        identity); returns (unknown_id, the track's row), or None when the identity is gone
        (named or forgotten meanwhile). Then enforces the bounds."""
        if not faces:
            raise GalleryError("an unknown track needs at least one embedded face")
        now = self.clock() if now is None else now

        def apply(db):
            if unknown_id is None:
                identity = int(db.execute("INSERT INTO unknown_identities(first_seen, last_seen) VALUES (?, ?)",
                                          (now, now)).lastrowid)
            else:
                identity = parse_label(unknown_id)
            found = db.execute("SELECT cameras, ignored FROM unknown_identities WHERE id=?", (identity,)).fetchone()
            if found is None:
                return None
            cameras = json.loads(found[0])
            track_row = row
            if track_row is not None and not db.execute("SELECT 1 FROM unknown_tracks WHERE id=? AND identity_id=?",
                                                        (track_row, identity)).fetchone():
                track_row = None    # pruned meanwhile: kept again as a new row, not a new visit
                visit = 0
            else:
                visit = 0 if track_row is not None else 1
            if track_row is None:
                track_row = int(db.execute(
                    "INSERT INTO unknown_tracks(identity_id, track_id, camera, started, seen) VALUES (?, ?, ?, ?, ?)",
                    (identity, track_id, camera, started, now)).lastrowid)
            else:
                db.execute("UPDATE unknown_tracks SET seen=? WHERE id=?", (now, track_row))
                db.execute("DELETE FROM unknown_crops WHERE track_row=?", (track_row,))
            for face in faces:
                db.execute("INSERT INTO unknown_crops(track_row, crop, quality, fingerprint, vector) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (track_row, encode_crop(face.crop) if face.crop is not None else None,
                            float(face.quality), fingerprint, _vector_bytes(face.embedding)))
            if camera not in cameras:
                cameras.append(camera)
            db.execute("UPDATE unknown_identities SET last_seen=MAX(last_seen, ?), visits=visits+?, cameras=? "
                       "WHERE id=?", (now, visit, json.dumps(sorted(cameras)), identity))
            self._prune(db, now)
            if not db.execute("SELECT 1 FROM unknown_tracks WHERE id=?", (track_row,)).fetchone():
                return None     # max_tracks = 0
            return label(identity), track_row
        return self._write(apply)

    def drop_track(self, row):
        # type: (int) -> None
        """A track kept as unknown turned out to be someone: its faces go (and an identity it
        alone made)."""
        def apply(db):
            db.execute("DELETE FROM unknown_tracks WHERE id=?", (row,))
            _drop_empty(db)
        self._write(apply)

    def expire(self, now=None):
        # type: (Optional[float]) -> int
        """Apply keep_days and max_tracks now; returns the tracks dropped."""
        now = self.clock() if now is None else now
        return self._write(lambda db: self._prune(db, now))

    def _prune(self, db, now):
        # type: (sqlite3.Connection, float) -> int
        dropped = 0
        if self.keep_days > 0:
            dropped += db.execute(
                "DELETE FROM unknown_tracks WHERE seen < ? AND identity_id IN "
                "(SELECT id FROM unknown_identities WHERE ignored=0)", (now - self.keep_days * DAY_S,)).rowcount
        over = db.execute("SELECT COUNT(*) FROM unknown_tracks t JOIN unknown_identities i ON i.id=t.identity_id "
                          "WHERE i.ignored=0").fetchone()[0] - self.max_tracks
        if over > 0:
            dropped += db.execute(
                "DELETE FROM unknown_tracks WHERE id IN (SELECT t.id FROM unknown_tracks t JOIN unknown_identities i "
                "ON i.id=t.identity_id WHERE i.ignored=0 ORDER BY t.seen, t.id LIMIT ?)", (over,)).rowcount
        _drop_empty(db)
        return int(dropped)

    # -- reading ------------------------------------------------------------------------------
    def identities(self):
        # type: () -> List[UnknownIdentity]
        rows = self._read(
            "SELECT i.id, i.first_seen, i.last_seen, i.visits, i.cameras, i.ignored, "
            "(SELECT COUNT(*) FROM unknown_tracks t WHERE t.identity_id=i.id), "
            "(SELECT COUNT(*) FROM unknown_crops c JOIN unknown_tracks t ON t.id=c.track_row WHERE t.identity_id=i.id) "
            "FROM unknown_identities i ORDER BY i.last_seen DESC, i.id DESC")
        return [UnknownIdentity(label(r[0]), float(r[1]), float(r[2]), int(r[3]), json.loads(r[4]), bool(r[5]),
                                int(r[6]), int(r[7])) for r in rows]

    def identity(self, unknown_id):
        # type: (str) -> UnknownIdentity
        wanted = label(parse_label(unknown_id))
        for item in self.identities():
            if item.unknown_id == wanted:
                return item
        raise GalleryError("no unknown identity {!r} (named, forgotten or expired?); see the unknowns action"
                           .format(unknown_id))

    def best_crop(self, unknown_id):
        # type: (str) -> Optional[np.ndarray]
        rows = self._read("SELECT c.crop FROM unknown_crops c JOIN unknown_tracks t ON t.id=c.track_row "
                          "WHERE t.identity_id=? AND c.crop IS NOT NULL ORDER BY c.quality DESC, c.id LIMIT 1",
                          (parse_label(unknown_id),))
        return decode_crop(rows[0][0]) if rows else None

    def vectors(self, fingerprint):
        # type: (str) -> IdentityVectors
        rows = self._read("SELECT c.vector, i.id, i.ignored FROM unknown_crops c "
                          "JOIN unknown_tracks t ON t.id=c.track_row JOIN unknown_identities i ON i.id=t.identity_id "
                          "WHERE c.fingerprint=? ORDER BY c.id", (fingerprint,))
        if not rows:
            return IdentityVectors(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], np.zeros(0, bool))
        return IdentityVectors(np.vstack([np.frombuffer(r[0], dtype="<f4") for r in rows]).astype(np.float32),
                               np.array([r[1] for r in rows], np.int64), [label(r[1]) for r in rows],
                               np.array([bool(r[2]) for r in rows]))

    def counts(self):
        # type: () -> Tuple[int, int, int]
        """(identities not ignored, ignored, kept tracks)."""
        rows = self._read("SELECT (SELECT COUNT(*) FROM unknown_identities WHERE ignored=0), "
                          "(SELECT COUNT(*) FROM unknown_identities WHERE ignored=1), "
                          "(SELECT COUNT(*) FROM unknown_tracks)")
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    # -- the actions ----------------------------------------------------------------------------
    def name(self, unknown_id, name, request_id=None, respond=None):
        # type: (str, str, Optional[str], Optional[Callable[[object], str]]) -> List[int]
        """The identity's kept faces become samples of `name` (created if new); the identity goes.
        Returns the new sample ids. One transaction, with the request id."""
        from edge.gallery.store import validate_name
        name = validate_name(name)
        identity = parse_label(unknown_id)

        def apply(db):
            rows = self._faces_of(db, identity)
            by_print = {}  # type: Dict[str, List[Sample]]
            for crop, fingerprint, vector, index in rows:
                by_print.setdefault(fingerprint, []).append(Sample(
                    crop=decode_crop(crop), embedding=np.frombuffer(vector, dtype="<f4").copy(),
                    source="unknown:{}#{}".format(label(identity), index)))
            found = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            person_id = int(found[0]) if found else int(db.execute(
                "INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid)
            ids = []
            for fingerprint, samples in sorted(by_print.items()):
                ids += self.gallery._insert_samples(db, person_id, samples, fingerprint, negative=False)
            db.execute("DELETE FROM unknown_identities WHERE id=?", (identity,))
            return ids
        return self._write(apply, request_id, respond, gallery_change=True)

    def _faces_of(self, db, identity):
        # type: (sqlite3.Connection, int) -> list
        if not db.execute("SELECT 1 FROM unknown_identities WHERE id=?", (identity,)).fetchone():
            raise GalleryError("no unknown identity {!r} (named, forgotten or expired?); see the unknowns action"
                               .format(label(identity)))
        rows = db.execute("SELECT c.crop, c.fingerprint, c.vector, c.id FROM unknown_crops c "
                          "JOIN unknown_tracks t ON t.id=c.track_row WHERE t.identity_id=? ORDER BY c.id",
                          (identity,)).fetchall()
        if not rows:
            raise GalleryError("unknown identity {} has no kept faces".format(label(identity)))
        return rows

    def ignore(self, unknown_id, request_id=None, respond=None):
        # type: (str, Optional[str], Optional[Callable[[object], str]]) -> int
        """Never report this face again; returns the kept faces it is recognised by."""
        identity = parse_label(unknown_id)

        def apply(db):
            count = len(self._faces_of(db, identity))
            db.execute("UPDATE unknown_identities SET ignored=1 WHERE id=?", (identity,))
            return count
        return self._write(apply, request_id, respond, gallery_change=True)

    def forget(self, unknown_id, request_id=None, respond=None):
        # type: (str, Optional[str], Optional[Callable[[object], str]]) -> int
        """Delete the identity with its crops and embeddings now; returns the crops deleted."""
        identity = parse_label(unknown_id)

        def apply(db):
            if not db.execute("SELECT 1 FROM unknown_identities WHERE id=?", (identity,)).fetchone():
                raise GalleryError("no unknown identity {!r} (named, forgotten or expired?)".format(label(identity)))
            count = db.execute("SELECT COUNT(*) FROM unknown_crops c JOIN unknown_tracks t ON t.id=c.track_row "
                               "WHERE t.identity_id=?", (identity,)).fetchone()[0]
            db.execute("DELETE FROM unknown_identities WHERE id=?", (identity,))
            return int(count)
        count = self._write(apply, request_id, respond, gallery_change=True)
        self.gallery._checkpoint()     # secure_delete: and out of the WAL too
        return count


def _drop_empty(db):
    # type: (sqlite3.Connection) -> None
    db.execute("DELETE FROM unknown_identities WHERE ignored=0 AND NOT EXISTS "
               "(SELECT 1 FROM unknown_tracks t WHERE t.identity_id=unknown_identities.id)")


