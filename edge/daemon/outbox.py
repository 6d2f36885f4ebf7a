"""A bounded on-disk queue of events waiting for the broker's acknowledgement.

SQLite in WAL mode with synchronous=NORMAL (the fsync policy): every append is committed
before publish_event returns, so it survives a crash of the process (kill -9); the WAL is
fsynced at checkpoints only, so a power cut may lose the last moments (an fsync per event
would wear the SD card and cost milliseconds). An entry leaves the queue only after the
broker acknowledged it (PUBACK), so delivery is at least once, in order.

Bound: `mqtt.queue_max_events` entries. When full, `drop_oldest` (default) deletes the
oldest entries, `drop_newest` refuses the new one; either way the dropped count is kept
on disk and shown in stats (outbox.dropped).
"""
import os
import sqlite3
import threading
from typing import List, NamedTuple, Optional

from edge.errors import FaceEdgeError

Entry = NamedTuple("Entry", [("id", int), ("topic", str), ("payload", bytes)])


class OutboxError(FaceEdgeError):
    pass


FULL_POLICIES = ("drop_oldest", "drop_newest")


class Outbox(object):
    def __init__(self, directory, capacity, full_policy="drop_oldest"):
        # type: (str, int, str) -> None
        if full_policy not in FULL_POLICIES:
            raise OutboxError("queue_full must be one of {}, got {!r}".format(", ".join(FULL_POLICIES), full_policy))
        self.capacity = capacity
        self.full_policy = full_policy
        self._lock = threading.Lock()
        self.write_failures = 0              # events that could not be stored (e.g. disk full)
        self.last_error = None               # type: Optional[str]
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self.path = os.path.join(directory, "outbox.db")
            if not os.path.exists(self.path):
                # events name people: owner-only, and SQLite gives the -wal/-shm files the same mode
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                "payload BLOB NOT NULL);"
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                "INSERT OR IGNORE INTO counters VALUES ('dropped', 0);")
        except (OSError, sqlite3.DatabaseError) as exc:
            raise OutboxError("cannot open the event queue in {}: {}".format(directory, exc))
        self._depth = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]

    def append(self, topic, payload):
        # type: (str, bytes) -> Optional[int]
        """Queue one message; returns its id (ids only grow: the sending order), or None when
        the queue is full and the policy is drop_newest."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if self.full_policy == "drop_newest" and self._depth >= self.capacity:
                    self._db.execute("UPDATE counters SET value = value + 1 WHERE key='dropped'")
                    self._db.execute("COMMIT")
                    return None
                entry_id = int(self._db.execute("INSERT INTO queue(topic, payload) VALUES (?, ?)",
                                                (topic, payload)).lastrowid)
                self._depth += 1
                excess = self._depth - self.capacity
                if excess > 0:
                    self._db.execute("DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT ?)",
                                     (excess,))
                    self._db.execute("UPDATE counters SET value = value + ? WHERE key='dropped'", (excess,))
                    self._depth -= excess
                self._db.execute("COMMIT")
                self.last_error = None
                return entry_id
            except sqlite3.DatabaseError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._depth = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
                self.write_failures += 1
                self.last_error = "could not queue an event in {}: {}{}".format(
                    self.path, exc, "; free space on that disk" if "full" in str(exc) else "")
                raise OutboxError(self.last_error)

    def peek(self, after_id, limit):
        # type: (int, int) -> List[Entry]
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload FROM queue WHERE id > ? ORDER BY id LIMIT ?",
                                    (after_id, limit)).fetchall()
        return [Entry(int(r[0]), r[1], bytes(r[2])) for r in rows]

    def ack(self, entry_id):
        # type: (int) -> None
        with self._lock:
            cursor = self._db.execute("DELETE FROM queue WHERE id=?", (entry_id,))
            self._depth -= cursor.rowcount

    @property
    def depth(self):
        # type: () -> int
        return self._depth

    @property
    def dropped(self):
        # type: () -> int
        with self._lock:
            return int(self._db.execute("SELECT value FROM counters WHERE key='dropped'").fetchone()[0])

    def close(self):
        # type: () -> None
        with self._lock:
            self._db.close()
