"""A consistent read-only view of the gallery on its own connection (export)."""
import sqlite3
from typing import Dict, Iterator, Tuple

import numpy as np

from edge.gallery.records import SnapshotSample


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
