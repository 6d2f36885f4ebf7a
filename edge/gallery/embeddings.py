"""Embeddings per model fingerprint: the matrix for a matcher, re-embedding after a model change,
the length each model's vectors have."""
from typing import Callable, List, Optional, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.gallery.records import GalleryMatrix, _vector_bytes, decode_crop
from edge.models.manifest import known_embedding_dim


class EmbeddingStore(object):
    """Mixin of Gallery: needs _lock, _db, _change."""

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

    def sample_embeddings(self, sample_id):
        # type: (int) -> dict
        with self._lock:
            rows = self._db.execute("SELECT fingerprint, vector FROM embeddings WHERE sample_id=?",
                                    (sample_id,)).fetchall()
        return dict((r[0], np.frombuffer(r[1], dtype="<f4").copy()) for r in rows)

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

    def add_embedding(self, sample_id, fingerprint, vector):
        # type: (int, str, np.ndarray) -> None
        self._change(None, lambda db: self._insert_embedding(db, sample_id, fingerprint, vector), None)

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
