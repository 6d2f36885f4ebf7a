"""A bounded on-disk queue of events waiting for the broker's acknowledgement.

SQLite in WAL mode with synchronous=NORMAL: an appended event survives a crash of the
process (kill -9); after a power cut the last moments may be lost. An entry leaves the
queue only after the broker acknowledged it (PUBACK), so delivery is at least once, in
order. When full, the oldest entries are dropped and counted (visible in stats).
"""
import os
import sqlite3
import threading
from typing import List, NamedTuple

from edge.errors import FaceEdgeError

Entry = NamedTuple("Entry", [("id", int), ("topic", str), ("payload", bytes)])


class OutboxError(FaceEdgeError):
    pass


class Outbox(object):
    def __init__(self, directory, capacity):
        # type: (str, int) -> None
        self.capacity = capacity
        self._lock = threading.Lock()
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self.path = os.path.join(directory, "outbox.db")
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
        # type: (str, bytes) -> None
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("INSERT INTO queue(topic, payload) VALUES (?, ?)", (topic, payload))
                self._depth += 1
                excess = self._depth - self.capacity
                if excess > 0:
                    self._db.execute("DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT ?)",
                                     (excess,))
                    self._db.execute("UPDATE counters SET value = value + ? WHERE key='dropped'", (excess,))
                    self._depth -= excess
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._depth = self._db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
                raise OutboxError("could not queue an event in {}: {}".format(self.path, exc))

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
