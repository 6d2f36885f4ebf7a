"""The gallery: one SQLite file (WAL) with people, their samples (aligned crops) and the
embeddings of each sample per recognizer fingerprint.

Every change is one transaction committed with synchronous=FULL, so what was reported done
survives a crash or power cut; readers never see half a change. A change may carry the
caller's request id; its response is stored in the same transaction, so a repeated request
is answered again instead of being applied twice.
"""
import json
import os
import sqlite3
import threading
import time
import unicodedata
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.models.manifest import known_embedding_dim

MAX_NAME_LENGTH = 100
REQUEST_HISTORY = 10000              # responses kept for repeated requests...
REQUEST_MAX_AGE_S = 30 * 24 * 3600.0  # ...and for at most 30 days

Sample = NamedTuple("Sample", [
    ("crop", Optional[np.ndarray]),       # 112x112x3 BGR uint8; None for imported embeddings
    ("embedding", Optional[np.ndarray]),  # for the fingerprint given with the change
    ("source", str),
])

Person = NamedTuple("Person", [
    ("id", int),
    ("name", str),
    ("samples", int),
    ("negatives", int),
    ("created", float),
])

GalleryMatrix = NamedTuple("GalleryMatrix", [
    ("vectors", np.ndarray),      # N x D float32, L2-normalised
    ("person_ids", np.ndarray),   # N int64
    ("names", List[str]),         # by row
    ("negative", np.ndarray),     # N bool: a "this is not them" sample
])

Summary = NamedTuple("Summary", [
    ("people", int),
    ("samples", int),
    ("negatives", int),
    ("fingerprints", List[str]),
    ("version", int),
])

StoredSample = NamedTuple("StoredSample", [
    ("id", int),
    ("person", str),
    ("negative", bool),
    ("crop", Optional[np.ndarray]),
    ("source", str),
    ("created", float),
])

Record = NamedTuple("Record", [          # one sample with everything known about it (import)
    ("person", str),
    ("negative", bool),
    ("crop_png", Optional[bytes]),
    ("source", str),
    ("created", Optional[float]),
    ("embeddings", Dict[str, np.ndarray]),  # fingerprint -> vector
])

SnapshotSample = NamedTuple("SnapshotSample", [
    ("id", int),
    ("person", str),
    ("negative", bool),
    ("has_crop", bool),
    ("crop_png", Optional[bytes]),         # None unless asked for
    ("source", str),
    ("created", float),
])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    negative INTEGER NOT NULL DEFAULT 0,
    crop BLOB, source TEXT NOT NULL DEFAULT '', created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS samples_person ON samples(person_id);
CREATE TABLE IF NOT EXISTS embeddings (
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (sample_id, fingerprint));
CREATE INDEX IF NOT EXISTS embeddings_fingerprint ON embeddings(fingerprint);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL, digest TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('version', 0);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', 1);
"""


def _same_command(request_id, row):
    # type: (str, tuple) -> str
    """The stored response of a repeated request id, if it is the same command (digest)."""
    digest = getattr(request_id, "digest", None)
    if digest is not None and row[1] is not None and row[1] != digest:
        raise GalleryError("request_id {} was already used for another command; nothing was done: "
                           "use a new request_id for each command".format(json.dumps(request_id)))
    return row[0]


def validate_name(name):
    # type: (object) -> str
    if not isinstance(name, str):
        raise GalleryError("a name must be a string, not {}".format(type(name).__name__))
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise GalleryError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError("a name must be at most {} characters (got {})".format(MAX_NAME_LENGTH, len(name)))
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in name):
        raise GalleryError("a name must not contain control characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise GalleryError("a name must not contain path separators or be '.' or '..'")
    return name


def encode_crop(crop):
    # type: (np.ndarray) -> bytes
    import cv2
    ok, png = cv2.imencode(".png", crop)
    if not ok:
        raise GalleryError("could not encode a face crop as PNG")
    return png.tobytes()


def decode_crop(data):
    # type: (Optional[bytes]) -> Optional[np.ndarray]
    if not data:
        return None
    import cv2
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _vector_bytes(vector):
    # type: (np.ndarray) -> bytes
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise GalleryError("an embedding must be a finite, non-zero vector")
    return (vector / norm).astype("<f4").tobytes()


def _busy(exc):
    # type: (sqlite3.OperationalError) -> bool
    return "locked" in str(exc) or "busy" in str(exc)


class Gallery(object):
    def __init__(self, path, timeout_s=30.0):
        # type: (str, float) -> None
        self.path = os.path.abspath(path)
        self.timeout_s = timeout_s
        directory = os.path.dirname(self.path)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise GalleryError("cannot create the gallery {}: {}".format(self.path, exc.strerror or exc))
        self._lock = threading.RLock()
        self._listeners = []  # type: List[Callable[[], None]]
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit returns only after the WAL is fsynced, so "done" survives power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            # Removed people's crops are overwritten, not left in free pages (privacy).
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout={}".format(int(timeout_s * 1000)))
            # Creating the schema takes the write lock: only when missing, so opening the gallery
            # while another process writes does not wait.
            if not self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
                self._db.executescript(_SCHEMA)  # idempotent; executescript manages its own commit
            elif "digest" not in [r[1] for r in self._db.execute("PRAGMA table_info(requests)")]:
                # Galleries from before the command digest (what a request id was used for).
                self._db.execute("ALTER TABLE requests ADD COLUMN digest TEXT")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise GalleryError("gallery {} is busy: another process held it for more than {:g} s; "
                                   "try again".format(self.path, timeout_s))
            raise GalleryError("{} is not a usable gallery database: {}".format(self.path, exc))
        except sqlite3.DatabaseError as exc:
            raise GalleryError("{} is not a usable gallery database: {}".format(self.path, exc))

    # -- plumbing ------------------------------------------------------------------------
    def close(self):
        # type: () -> None
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    class _Tx(object):
        def __init__(self, gallery):
            self.gallery = gallery

        def __enter__(self):
            self.gallery._lock.acquire()
            try:
                self.gallery._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.gallery._lock.release()
                raise
            return self.gallery._db

        def __exit__(self, exc_type, exc, tb):
            db = self.gallery._db
            try:
                if exc_type is None:
                    try:
                        db.execute("COMMIT")
                    except sqlite3.OperationalError as error:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        raise GalleryError("could not commit the gallery change: {}".format(error))
                elif db.in_transaction:     # SQLite may have rolled back itself (e.g. disk full)
                    db.execute("ROLLBACK")
            finally:
                self.gallery._lock.release()
            return False

    def add_listener(self, listener):
        # type: (Callable[[], None]) -> None
        """listener() after every committed change made through this object (on the changing thread)."""
        self._listeners.append(listener)

    def _notify(self):
        for listener in self._listeners:
            listener()

    def _transaction(self):
        return Gallery._Tx(self)

    def _change(self, request_id, apply, respond):
        # type: (Optional[str], Callable[[sqlite3.Connection], object], Optional[Callable[[object], str]]) -> object
        """Run apply in one transaction, bump the version, and store the response for request_id.
        A request id seen before raises AlreadyDone (carrying the stored response) and changes nothing."""
        if request_id is not None and respond is None:
            respond = lambda _result: json.dumps({"request_id": request_id, "ok": True})
        try:
            with self._transaction() as db:
                if request_id is not None:
                    row = db.execute("SELECT response, digest FROM requests WHERE request_id=?",
                                     (request_id,)).fetchone()
                    if row is not None:
                        raise _AlreadyDone(_same_command(request_id, row))
                result = apply(db)
                db.execute("UPDATE meta SET value = value + 1 WHERE key='version'")
                if request_id is not None:
                    now = time.time()
                    db.execute("INSERT INTO requests(request_id, response, created, digest) VALUES (?, ?, ?, ?)",
                               (request_id, respond(result), now, getattr(request_id, "digest", None)))
                    db.execute("DELETE FROM requests WHERE created < ? OR created < (SELECT created FROM requests "
                               "ORDER BY created DESC LIMIT 1 OFFSET ?)", (now - REQUEST_MAX_AGE_S, REQUEST_HISTORY))
            self._notify()
            return result
        except sqlite3.IntegrityError as exc:
            raise GalleryError("gallery constraint failed: {}".format(exc))
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise GalleryError("gallery {} could not be written: locked by another process for more than "
                                   "{:g} s; try again".format(self.path, self.timeout_s))
            if "full" in str(exc):
                raise GalleryError("gallery {} could not be written: {}; nothing was changed: free space on "
                                   "that disk and send the command again".format(self.path, exc))
            raise GalleryError("gallery {} could not be written: {}".format(self.path, exc))

    def response_for(self, request_id):
        # type: (str) -> Optional[str]
        """The answer stored for request_id, or None; GalleryError when the id was used for another
        command (request_id.digest, see edge.daemon.command_router.RequestId)."""
        with self._lock:
            row = self._db.execute("SELECT response, digest FROM requests WHERE request_id=?",
                                   (request_id,)).fetchone()
        return _same_command(request_id, row) if row else None

    @property
    def version(self):
        # type: () -> int
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])

    # -- reading -------------------------------------------------------------------------
    def _person_id(self, db, name):
        # type: (sqlite3.Connection, str) -> int
        row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
        if row is None:
            raise GalleryError("no person named {!r} in the gallery".format(name))
        return int(row[0])

    def list_people(self):
        # type: () -> List[Person]
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id, p.name, "
                "COALESCE(SUM(CASE WHEN s.negative=0 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN s.negative=1 THEN 1 ELSE 0 END), 0), p.created "
                "FROM people p LEFT JOIN samples s ON s.person_id = p.id GROUP BY p.id ORDER BY p.name").fetchall()
        return [Person(int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def summary(self):
        # type: () -> Summary
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot: the counts and the version agree
            try:
                people = self._db.execute("SELECT COUNT(*) FROM people").fetchone()[0]
                samples = self._db.execute("SELECT COUNT(*) FROM samples WHERE negative=0").fetchone()[0]
                negatives = self._db.execute("SELECT COUNT(*) FROM samples WHERE negative=1").fetchone()[0]
                prints = [r[0] for r in self._db.execute("SELECT DISTINCT fingerprint FROM embeddings ORDER BY 1")]
                version = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0]
            finally:
                self._db.execute("COMMIT")
        return Summary(int(people), int(samples), int(negatives), prints, int(version))

    def embeddings(self, fingerprint):
        # type: (str) -> GalleryMatrix
        with self._lock:
            rows = self._db.execute(
                "SELECT e.vector, p.id, p.name, s.negative FROM embeddings e "
                "JOIN samples s ON s.id = e.sample_id JOIN people p ON p.id = s.person_id "
                "WHERE e.fingerprint=? ORDER BY s.id", (fingerprint,)).fetchall()
        if not rows:
            return GalleryMatrix(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], np.zeros(0, bool))
        vectors = np.vstack([np.frombuffer(r[0], dtype="<f4") for r in rows]).astype(np.float32)
        return GalleryMatrix(vectors, np.array([r[1] for r in rows], np.int64), [r[2] for r in rows],
                             np.array([bool(r[3]) for r in rows]))

    def samples(self, with_crops=True, page=256):
        # type: (bool, int) -> Iterator[StoredSample]
        """Every sample, in pages (crops of a large gallery do not fit in memory at once)."""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT s.id, p.name, s.negative, {}, s.source, s.created FROM samples s "
                    "JOIN people p ON p.id = s.person_id WHERE s.id > ? ORDER BY s.id LIMIT ?".format(
                        "s.crop" if with_crops else "NULL"), (last, page)).fetchall()
            if not rows:
                return
            for r in rows:
                yield StoredSample(int(r[0]), r[1], bool(r[2]), decode_crop(r[3]), r[4], float(r[5]))
            last = int(rows[-1][0])

    def sample_embeddings(self, sample_id):
        # type: (int) -> dict
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, vector FROM embeddings WHERE sample_id=?",
                                    (sample_id,)).fetchall()
        return dict((r[0], np.frombuffer(r[1], dtype="<f4").copy()) for r in rows)

    def integrity_check(self):
        # type: () -> str
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- changes -------------------------------------------------------------------------
    def _insert_samples(self, db, person_id, samples, fingerprint, negative):
        # type: (sqlite3.Connection, int, Sequence[Sample], Optional[str], bool) -> List[int]
        ids = []
        now = time.time()
        for sample in samples:
            crop = encode_crop(sample.crop) if sample.crop is not None else None
            if crop is None and sample.embedding is None:
                raise GalleryError("a sample needs a face crop or an embedding")
            cursor = db.execute("INSERT INTO samples(person_id, negative, crop, source, created) VALUES (?, ?, ?, ?, ?)",
                                (person_id, int(negative), crop, sample.source or "", now))
            ids.append(int(cursor.lastrowid))
            if sample.embedding is not None:
                if not fingerprint:
                    raise GalleryError("an embedding needs the fingerprint of the model that made it")
                self._insert_embedding(db, cursor.lastrowid, fingerprint, sample.embedding)
        return ids

    @staticmethod
    def _insert_embedding(db, sample_id, fingerprint, vector):
        # type: (sqlite3.Connection, int, str, np.ndarray) -> None
        data = _vector_bytes(vector)
        known = known_embedding_dim(fingerprint)
        if known is not None and len(data) != known * 4:
            raise GalleryError("a {}-d embedding cannot come from model {}, whose embeddings are {}-d".format(
                len(data) // 4, fingerprint[:16], known))
        # One model makes one length: a mixed matrix could not be searched.
        row = db.execute("SELECT length(vector) FROM embeddings WHERE fingerprint=? LIMIT 1", (fingerprint,)).fetchone()
        if row is not None and int(row[0]) != len(data):
            raise GalleryError("a {}-d embedding does not fit model {} whose embeddings are {}-d; "
                               "pass the right --fingerprint".format(len(data) // 4, fingerprint, int(row[0]) // 4))
        db.execute("INSERT OR REPLACE INTO embeddings(sample_id, fingerprint, vector) VALUES (?, ?, ?)",
                   (sample_id, fingerprint, data))

    def enroll(self, name, samples, fingerprint, request_id=None, respond=None):
        # type: (str, Sequence[Sample], Optional[str], Optional[str], Optional[Callable[[object], str]]) -> List[int]
        """Add samples to a person (created if new), all or nothing; returns the sample ids."""
        name = validate_name(name)
        if not samples:
            raise GalleryError("nothing to enroll for {!r}: no samples".format(name))

        def apply(db):
            row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
            if row is None:
                person_id = int(db.execute("INSERT INTO people(name, created) VALUES (?, ?)",
                                           (name, time.time())).lastrowid)
            else:
                person_id = int(row[0])
            return self._insert_samples(db, person_id, samples, fingerprint, negative=False)
        return self._change(request_id, apply, respond)

    def add_negative(self, name, samples, fingerprint, request_id=None, respond=None):
        # type: (str, Sequence[Sample], Optional[str], Optional[str], Optional[Callable[[object], str]]) -> List[int]
        """Faces that are *not* this person: they veto matches to them."""
        name = validate_name(name)

        def apply(db):
            return self._insert_samples(db, self._person_id(db, name), samples, fingerprint, negative=True)
        return self._change(request_id, apply, respond)

    def remove(self, name, request_id=None, respond=None):
        # type: (str, Optional[str], Optional[Callable[[object], str]]) -> int
        """Delete a person with all their crops and embeddings; returns the samples removed."""
        name = validate_name(name)

        def apply(db):
            person_id = self._person_id(db, name)
            count = db.execute("SELECT COUNT(*) FROM samples WHERE person_id=?", (person_id,)).fetchone()[0]
            db.execute("DELETE FROM people WHERE id=?", (person_id,))
            return int(count)
        removed = self._change(request_id, apply, respond)
        self._checkpoint()
        return removed

    def _checkpoint(self):
        # The WAL still holds the removed crops' old pages until it is checkpointed and truncated.
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process is reading: its next checkpoint overwrites them

    def rename(self, old, new, request_id=None, respond=None):
        # type: (str, str, Optional[str], Optional[Callable[[object], str]]) -> None
        old, new = validate_name(old), validate_name(new)

        def apply(db):
            person_id = self._person_id(db, old)
            if old != new and db.execute("SELECT 1 FROM people WHERE name=?", (new,)).fetchone():
                raise GalleryError("cannot rename {!r} to {!r}: that name is taken".format(old, new))
            db.execute("UPDATE people SET name=? WHERE id=?", (new, person_id))
        return self._change(request_id, apply, respond)

    def add_embedding(self, sample_id, fingerprint, vector):
        # type: (int, str, np.ndarray) -> None
        self._change(None, lambda db: self._insert_embedding(db, sample_id, fingerprint, vector), None)

    def import_records(self, records, request_id=None, respond=None):
        # type: (Iterable[Record], Optional[str], Optional[Callable[[object], str]]) -> Tuple[int, int]
        """Add many samples (an archive, a seed file) as one change: all or nothing. Negatives
        for someone who is not in the gallery have nothing to veto and are skipped.
        Returns (added, skipped)."""
        def apply(db):
            people = {}  # type: Dict[str, int]

            def person_id(name, create):
                # type: (str, bool) -> Optional[int]
                if name not in people:
                    row = db.execute("SELECT id FROM people WHERE name=?", (name,)).fetchone()
                    if row is None and not create:
                        return None
                    people[name] = int(row[0]) if row else int(db.execute(
                        "INSERT INTO people(name, created) VALUES (?, ?)", (name, time.time())).lastrowid)
                return people[name]

            added, negatives = 0, []
            for record in records:
                record = record._replace(person=validate_name(record.person))
                if record.negative:
                    negatives.append(record)  # after all positives: their person may come later
                    continue
                self._insert_record(db, person_id(record.person, True), record)
                added += 1
            skipped = 0
            for record in negatives:
                pid = person_id(record.person, False)
                if pid is None:
                    skipped += 1
                else:
                    self._insert_record(db, pid, record)
                    added += 1
            return added, skipped
        return self._change(request_id, apply, respond)

    def _insert_record(self, db, person_id, record):
        # type: (sqlite3.Connection, int, Record) -> None
        if record.crop_png is not None and decode_crop(record.crop_png) is None:
            raise GalleryError("the face crop of a sample of {!r} is not a readable PNG".format(record.person))
        if record.crop_png is None and not record.embeddings:
            raise GalleryError("a sample of {!r} has neither a face crop nor an embedding".format(record.person))
        cursor = db.execute("INSERT INTO samples(person_id, negative, crop, source, created) VALUES (?, ?, ?, ?, ?)",
                            (person_id, int(record.negative), record.crop_png, record.source or "",
                             time.time() if record.created is None else float(record.created)))
        for fingerprint, vector in sorted(record.embeddings.items()):
            self._insert_embedding(db, cursor.lastrowid, fingerprint, vector)

    def snapshot(self):
        # type: () -> Snapshot
        return Snapshot(self.path, self.timeout_s)

    def record_response(self, request_id, response):
        # type: (str, str) -> None
        """Remember a response for a request that changed nothing (e.g. list)."""
        self._change(request_id, lambda db: None, lambda _result: response)

    def missing_embeddings(self, fingerprint):
        # type: (str) -> List[int]
        with self._lock:
            rows = self._db.execute(
                "SELECT s.id FROM samples s WHERE s.crop IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM embeddings e WHERE e.sample_id = s.id AND e.fingerprint=?) ORDER BY s.id",
                (fingerprint,)).fetchall()
        return [int(r[0]) for r in rows]

    def unusable_samples(self, fingerprint):
        # type: (str) -> Tuple[int, List[str]]
        """(samples, their people's names) this model cannot use: no embedding for it and no crop
        to make one (embeddings imported from another model)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.name FROM samples s JOIN people p ON p.id = s.person_id WHERE s.crop IS NULL AND "
                "NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.sample_id = s.id AND e.fingerprint=?)",
                (fingerprint,)).fetchall()
        return len(rows), sorted(set(r[0] for r in rows))

    def reembed(self, fingerprint, embed_fn, batch=32, progress=None):
        # type: (str, Callable[[List[np.ndarray]], np.ndarray], int, Optional[Callable[[int], None]]) -> int
        """Embed every stored crop that has no embedding for this fingerprint (a new model).
        Each batch is its own transaction, so an interrupted run resumes where it stopped."""
        todo = self.missing_embeddings(fingerprint)
        for start in range(0, len(todo), batch):
            ids = todo[start:start + batch]
            with self._lock:
                rows = self._db.execute("SELECT id, crop FROM samples WHERE id IN ({})".format(
                    ",".join("?" * len(ids))), ids).fetchall()
            crops = [decode_crop(r[1]) for r in rows]
            if not crops:
                continue
            vectors = embed_fn(crops)

            if len(vectors) != len(rows):
                raise GalleryError("re-embedding returned {} vectors for {} crops".format(len(vectors), len(rows)))

            def apply(db, rows=rows, vectors=vectors):
                for (sample_id, _), vector in zip(rows, vectors):
                    # The sample may have been removed meanwhile (another process).
                    db.execute("INSERT OR REPLACE INTO embeddings(sample_id, fingerprint, vector) "
                               "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM samples WHERE id=?)",
                               (sample_id, fingerprint, _vector_bytes(vector), sample_id))
            self._change(None, apply, None)
            if progress:
                progress(len(ids))
        return len(todo)


class Snapshot(object):
    """A consistent read-only view on its own connection (export): writers in this or other
    processes carry on, and this view does not change under the reader."""

    def __init__(self, path, timeout_s):
        # type: (str, float) -> None
        self._db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        self._db.execute("BEGIN")
        self.version = int(self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        # type: () -> None
        self._db.execute("ROLLBACK")
        self._db.close()

    def samples(self, with_crops=True):
        # type: (bool) -> Iterator[SnapshotSample]
        cursor = self._db.execute(
            "SELECT s.id, p.name, s.negative, s.crop IS NOT NULL, {}, s.source, s.created FROM samples s "
            "JOIN people p ON p.id = s.person_id ORDER BY s.id".format("s.crop" if with_crops else "NULL"))
        for r in cursor:
            yield SnapshotSample(int(r[0]), r[1], bool(r[2]), bool(r[3]), r[4], r[5], float(r[6]))

    def embeddings(self):
        # type: () -> Dict[str, Tuple[np.ndarray, np.ndarray]]
        """fingerprint -> (sample ids, matrix with one row per sample id)."""
        result = {}
        prints = [r[0] for r in self._db.execute("SELECT DISTINCT fingerprint FROM embeddings ORDER BY 1")]
        for fingerprint in prints:
            rows = self._db.execute("SELECT sample_id, vector FROM embeddings WHERE fingerprint=? ORDER BY sample_id",
                                    (fingerprint,)).fetchall()
            result[fingerprint] = (np.array([r[0] for r in rows], np.int64),
                                   np.vstack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32))
        return result


class _AlreadyDone(GalleryError):
    """Raised inside a change whose request id was already applied; carries the stored response."""

    def __init__(self, response):
        # type: (str) -> None
        super(_AlreadyDone, self).__init__("request already applied")
        self.response = response


AlreadyDone = _AlreadyDone
