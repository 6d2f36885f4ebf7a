"""The shared gallery's bookkeeping inside the local SQLite gallery.

shared_people: each person's stable id (uid), revision, writer, time, removed flag and a digest
of what was last published or applied (name, ignored, sample keys): a local change made by any
path (an MQTT command, the CLI while the daemon was off, live enrollment) is found by comparing
the digest, so nothing needs to tell this module about it. A removed person keeps its row (the
tombstone). shared_samples: each sample's stable key and the crop JPEG exactly as shared, so a
republished person is byte-identical and no device re-embeds it twice.
"""
import hashlib
import json
import sqlite3
import time
import uuid
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.gallery.store import decode_crop, encode_crop, validate_name
from edge.sharing.format import (MAX_CROP_BYTES, MAX_FINGERPRINTS, MAX_NEGATIVES, MAX_PERSON_BYTES, MAX_SAMPLES,
                                 PersonMessage, SharedFormatError, SharedSample, encode_person, version_key)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS shared_people (uid TEXT PRIMARY KEY, "
    "person INTEGER UNIQUE REFERENCES people(id) ON DELETE SET NULL, revision INTEGER NOT NULL, "
    "writer TEXT NOT NULL, changed REAL NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, "
    "ignored INTEGER NOT NULL DEFAULT 0, digest TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS shared_samples (sample INTEGER PRIMARY KEY REFERENCES samples(id) "
    "ON DELETE CASCADE, key TEXT NOT NULL, jpeg BLOB)",
    "CREATE TABLE IF NOT EXISTS shared_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

Version = NamedTuple("Version", [("revision", int), ("writer", str), ("removed", bool), ("changed", float)])


def crop_jpeg(crop):
    # type: (np.ndarray) -> bytes
    """The crop as a JPEG under MAX_CROP_BYTES (a 112x112 face is ~4-6 kB at quality 90)."""
    import cv2
    for quality in (90, 75, 60, 40):
        ok, data = cv2.imencode(".jpg", crop, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        if ok and len(data) <= MAX_CROP_BYTES:
            return data.tobytes()
    raise GalleryError("a face crop does not fit in {} bytes as JPEG".format(MAX_CROP_BYTES))


def _key(data):
    # type: (bytes) -> str
    return hashlib.sha256(data).hexdigest()[:32]


def version_order(version):
    # type: (Version) -> Tuple[int, int, str]
    return version_key(version.revision, version.removed, version.writer)


class SharedState(object):
    def __init__(self, gallery, shared_id):
        # type: (object, str) -> None
        """gallery: edge.gallery.Gallery; shared_id: the gallery.shared_id this bookkeeping is for
        (another id starts afresh: every local person is new to that gallery)."""
        self.gallery = gallery
        self.shared_id = shared_id

        def create(db):
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM shared_meta WHERE key='gallery'").fetchone()
            if row is None or row[0] != shared_id:
                db.execute("DELETE FROM shared_people")
                db.execute("DELETE FROM shared_samples")
                db.execute("INSERT OR REPLACE INTO shared_meta(key, value) VALUES ('gallery', ?)", (shared_id,))
        with self.gallery._lock:
            ready = self.gallery._db.execute("SELECT value FROM shared_meta WHERE key='gallery'").fetchone() \
                if self._has_tables() else None
        if ready is None or ready[0] != shared_id:
            self._write(create)

    # -- plumbing over the gallery's connection and transactions --------------------------------
    def _has_tables(self):
        # type: () -> bool
        return self.gallery._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='shared_meta'").fetchone() is not None

    def _read(self, sql, args=()):
        with self.gallery._lock:
            return self.gallery._db.execute(sql, args).fetchall()

    def _write(self, apply):
        return self.gallery._change(None, apply, None)

    # -- reading ------------------------------------------------------------------------------
    def view(self):
        # type: () -> Dict[str, Version]
        rows = self._read("SELECT uid, revision, writer, deleted, changed FROM shared_people")
        return dict((r[0], Version(int(r[1]), r[2], bool(r[3]), float(r[4]))) for r in rows)

    def live_count(self):
        # type: () -> int
        return int(self._read("SELECT COUNT(*) FROM shared_people WHERE deleted=0")[0][0])

    def uid_of(self, name):
        # type: (str) -> Optional[str]
        rows = self._read("SELECT x.uid FROM shared_people x JOIN people p ON p.id = x.person WHERE p.name=?", (name,))
        return rows[0][0] if rows else None

    def message(self, uid):
        # type: (str) -> Optional[PersonMessage]
        """The person as a message (None: removed or unknown): the newest MAX_SAMPLES samples and
        MAX_NEGATIVES negatives, fewer when the message would be too large."""
        rows = self._read("SELECT x.revision, x.writer, x.changed, x.deleted, x.ignored, p.name, p.id "
                          "FROM shared_people x LEFT JOIN people p ON p.id = x.person WHERE x.uid=?", (uid,))
        if not rows or rows[0][3] or rows[0][6] is None:
            return None
        revision, writer, changed, _, ignored, name, person = rows[0]
        samples = self._read("SELECT s.id, s.negative, k.key, k.jpeg, s.source, s.created FROM samples s "
                             "JOIN shared_samples k ON k.sample = s.id WHERE s.person_id=? "
                             "ORDER BY s.created DESC, s.id DESC", (person,))
        chosen = [r for r in samples if not r[1]][:MAX_SAMPLES] + [r for r in samples if r[1]][:MAX_NEGATIVES]
        shared = [SharedSample(r[2], bool(r[1]), r[3], self._embeddings(r[0]), r[4] or "", float(r[5]))
                  for r in chosen]
        while True:
            message = PersonMessage(uid, int(revision), name, writer, float(changed), bool(ignored), shared)
            try:
                encode_person(message)
                return message
            except SharedFormatError:
                if len(shared) <= 1:
                    raise
                shared = shared[:-1]     # the oldest (negatives first): still one person under the bound

    def _embeddings(self, sample_id):
        # type: (int) -> Dict[str, np.ndarray]
        rows = self._read("SELECT fingerprint, vector FROM embeddings WHERE sample_id=? ORDER BY fingerprint "
                          "LIMIT ?", (sample_id, MAX_FINGERPRINTS))
        return dict((r[0], np.frombuffer(r[1], dtype="<f4").copy()) for r in rows)

    # -- local changes -> revisions ---------------------------------------------------------------
    def reconcile(self, me, now=None):
        # type: (str, Optional[float]) -> List[str]
        """Every local change since the last call becomes a new revision by `me` (a new person:
        revision 1 under a new uid; a removed one: a tombstone). Returns the changed uids."""
        now = time.time() if now is None else now
        keys = self._new_sample_keys()

        def apply(db):
            for sample_id, key, jpeg in keys:
                db.execute("INSERT OR IGNORE INTO shared_samples(sample, key, jpeg) SELECT ?, ?, ? "
                           "WHERE EXISTS (SELECT 1 FROM samples WHERE id=?)", (sample_id, key, jpeg, sample_id))
            changed = []
            known = dict((r[0], r[1:]) for r in db.execute(
                "SELECT person, uid, digest, revision FROM shared_people WHERE person IS NOT NULL"))
            for person, name in db.execute("SELECT id, name FROM people ORDER BY id").fetchall():
                digest = _digest(db, person, name)
                if person not in known:
                    uid = uuid.uuid4().hex
                    db.execute("INSERT INTO shared_people(uid, person, revision, writer, changed, digest) "
                               "VALUES (?, ?, 1, ?, ?, ?)", (uid, person, me, now, digest))
                    changed.append(uid)
                elif known[person][1] != digest:
                    uid = known[person][0]
                    db.execute("UPDATE shared_people SET revision=revision+1, writer=?, changed=?, digest=? "
                               "WHERE uid=?", (me, now, digest, uid))
                    changed.append(uid)
            for (uid,) in db.execute("SELECT uid FROM shared_people WHERE person IS NULL AND deleted=0").fetchall():
                db.execute("UPDATE shared_people SET revision=revision+1, writer=?, changed=?, deleted=1, digest='' "
                           "WHERE uid=?", (me, now, uid))
                changed.append(uid)
            return changed
        if not keys and not self._maybe_changed():
            return []
        return self._write(apply)

    def _maybe_changed(self):
        # type: () -> bool
        """Cheap pre-check so an idle reconcile does not write (and bump the gallery version)."""
        with self.gallery._lock:
            db = self.gallery._db
            if db.execute("SELECT 1 FROM shared_people WHERE person IS NULL AND deleted=0 LIMIT 1").fetchone():
                return True
            if db.execute("SELECT 1 FROM people p WHERE NOT EXISTS (SELECT 1 FROM shared_people x "
                          "WHERE x.person = p.id) LIMIT 1").fetchone():
                return True
            rows = db.execute("SELECT x.person, p.name, x.digest FROM shared_people x JOIN people p "
                              "ON p.id = x.person").fetchall()
            return any(_digest(db, person, name) != digest for person, name, digest in rows)

    def _new_sample_keys(self):
        # type: () -> List[Tuple[int, str, Optional[bytes]]]
        rows = self._read("SELECT s.id, s.crop FROM samples s WHERE NOT EXISTS "
                          "(SELECT 1 FROM shared_samples k WHERE k.sample = s.id) ORDER BY s.id")
        keys = []
        for sample_id, crop in rows:
            image = decode_crop(crop)
            if image is not None:
                jpeg = crop_jpeg(image)
                keys.append((int(sample_id), _key(jpeg), jpeg))
                continue
            vectors = self._embeddings(int(sample_id))
            if vectors:
                first = sorted(vectors)[0]
                keys.append((int(sample_id), _key(first.encode("utf-8") + vectors[first].tobytes()), None))
        return keys

    # -- messages -> local changes ----------------------------------------------------------------
    def apply(self, message):
        # type: (PersonMessage) -> Optional[str]
        """Bring the local person to the message (name, samples by key, embeddings as sent). Returns
        None when applied, else why not (e.g. the name belongs to another local person)."""
        try:
            name = validate_name(message.name)
        except GalleryError as exc:
            return str(exc)
        crops = {}
        for s in message.samples:
            if s.jpeg is not None:
                image = decode_crop(s.jpeg)
                if image is None or image.shape[:2] != (112, 112):
                    return "sample {} is not a 112x112 JPEG crop".format(s.key)
                crops[s.key] = encode_crop(image)

        def change(db):
            row = db.execute("SELECT person FROM shared_people WHERE uid=?", (message.person_id,)).fetchone()
            person = row[0] if row else None
            other = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if other is not None and other[0] != person:
                return "the name {!r} belongs to another person here".format(name)
            if person is None:
                person = int(db.execute("INSERT INTO people(name, created) VALUES (?, ?)",
                                        (name, message.changed_at)).lastrowid)
            else:
                db.execute("UPDATE people SET name=? WHERE id=?", (name, person))
            self._replace_samples(db, person, message, crops)
            db.execute("INSERT OR REPLACE INTO shared_people(uid, person, revision, writer, changed, deleted, "
                       "ignored, digest) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                       (message.person_id, person, message.revision, message.changed_by, message.changed_at,
                        int(message.ignored), _digest(db, person, name)))
            return None
        return self._write(change)

    def _replace_samples(self, db, person, message, crops):
        # type: (sqlite3.Connection, int, PersonMessage, Dict[str, bytes]) -> None
        have = dict((r[1], r[0]) for r in db.execute(
            "SELECT s.id, k.key FROM samples s LEFT JOIN shared_samples k ON k.sample = s.id WHERE s.person_id=?",
            (person,)))
        wanted = set(s.key for s in message.samples)
        for key, sample_id in have.items():
            if key not in wanted:
                db.execute("DELETE FROM samples WHERE id=?", (sample_id,))
        for s in message.samples:
            if s.key in have:
                continue
            sample_id = int(db.execute(
                "INSERT INTO samples(person_id, negative, crop, source, created) VALUES (?, ?, ?, ?, ?)",
                (person, int(s.negative), crops.get(s.key), s.source, s.created)).lastrowid)
            db.execute("INSERT INTO shared_samples(sample, key, jpeg) VALUES (?, ?, ?)", (sample_id, s.key, s.jpeg))
            for fingerprint, vector in sorted(s.embeddings.items()):
                try:
                    self.gallery._insert_embedding(db, sample_id, fingerprint, vector)
                except GalleryError:
                    pass    # a vector that does not fit that model here: re-embedded from the crop instead

    def remove(self, uid, revision, writer, changed=None):
        # type: (str, int, str, Optional[float]) -> bool
        """Delete the person (crops, embeddings) and keep the tombstone. True when someone was deleted."""
        def change(db):
            row = db.execute("SELECT person FROM shared_people WHERE uid=?", (uid,)).fetchone()
            if row is not None and row[0] is not None:
                db.execute("DELETE FROM people WHERE id=?", (row[0],))
            db.execute("INSERT OR REPLACE INTO shared_people(uid, person, revision, writer, changed, deleted, digest) "
                       "VALUES (?, NULL, ?, ?, ?, 1, '')", (uid, revision, writer,
                                                            time.time() if changed is None else changed))
            return row is not None and row[0] is not None
        deleted = self._write(change)
        if deleted:
            self.gallery._checkpoint()     # the removed crops leave the WAL too
        return deleted

    def replace_response(self, request_id, response):
        # type: (str, str) -> None
        """A request whose change lost a conflict: a repeat gets the final answer."""
        self._write(lambda db: db.execute("UPDATE requests SET response=? WHERE request_id=?", (response, request_id)))


def _digest(db, person, name):
    # type: (sqlite3.Connection, int, str) -> str
    keys = db.execute("SELECT s.negative, COALESCE(k.key, 'local:' || s.id) FROM samples s LEFT JOIN shared_samples k "
                      "ON k.sample = s.id WHERE s.person_id=? ORDER BY 2", (person,)).fetchall()
    return hashlib.sha1(json.dumps([name, [[int(n), k] for n, k in keys]]).encode("utf-8")).hexdigest()
