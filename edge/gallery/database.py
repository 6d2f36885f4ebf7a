"""The gallery file and its one transaction helper: opening (WAL, synchronous=FULL, secure
delete), `_change` (one transaction, the version bump, the stored response of a request id,
listeners told after the commit), the request log, checkpoints and snapshots.

Stores of other jobs (people, embeddings here; unknown identities, the shared gallery's
bookkeeping) write through `_change` / `_transaction` and read under `_lock`.
"""
import json
import os
import sqlite3
import threading
import time
from typing import Callable, List, Optional

from edge.errors import GalleryError
from edge.gallery.records import REQUEST_HISTORY, REQUEST_MAX_AGE_S, _AlreadyDone, _busy, _same_command
from edge.gallery.snapshot import Snapshot

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


# Every table a gallery file may hold (this module's, edge/unknowns/store.py's, edge/sharing/state.py's),
# and the columns each must have: anything else is another application's database.
_COLUMNS = {
    "people": {"id", "name", "created"},
    "samples": {"id", "person_id", "negative", "crop", "source", "created"},
    "embeddings": {"sample_id", "fingerprint", "vector"},
    "requests": {"request_id", "response", "created"},
    "meta": {"key", "value"},
}
_OTHER_TABLES = {"unknown_identities", "unknown_tracks", "unknown_crops", "shared_people", "shared_samples",
                 "shared_meta"}


def _foreign(db, path):
    # type: (sqlite3.Connection, str) -> Optional[str]
    """Why the database at path is not a faceedge gallery, or None (an empty file is one to be)."""
    tables = set(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                          "AND name NOT LIKE 'sqlite_%'"))
    if not tables:
        return None
    unknown = sorted(tables - set(_COLUMNS) - _OTHER_TABLES)
    if unknown:
        return ("{} is not a faceedge gallery: it holds tables faceedge does not know ({}); it was left "
                "untouched: point gallery.path at another file".format(path, ", ".join(unknown[:5])))
    for table, columns in sorted(_COLUMNS.items()):
        if table in tables:
            found = set(r[1] for r in db.execute("PRAGMA table_info({})".format(table)))
            if not columns <= found:
                return ("{} is not a faceedge gallery: its table '{}' lacks the columns {}; it was left "
                        "untouched".format(path, table, ", ".join(sorted(columns - found))))
    return None     # ours, maybe with its creation cut short (kill -9): completed below


class GalleryDatabase(object):
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
            why = _foreign(self._db, self.path)      # before anything writes to the file
            if why:
                self._db.close()
                raise GalleryError(why)
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
        return GalleryDatabase._Tx(self)

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

    def integrity_check(self):
        # type: () -> str
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def _checkpoint(self):
        # The WAL still holds the removed crops' old pages until it is checkpointed and truncated.
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process is reading: its next checkpoint overwrites them

    def snapshot(self):
        # type: () -> Snapshot
        return Snapshot(self.path, self.timeout_s)

    def record_response(self, request_id, response):
        # type: (str, str) -> None
        """Remember a response for a request that changed nothing (e.g. list)."""
        self._change(request_id, lambda db: None, lambda _result: response)
