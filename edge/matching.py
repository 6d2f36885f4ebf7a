"""Matching faces against the gallery: cosine similarity as one matrix product, the best
sample per person, an open-set threshold, and negative samples that veto a person.

`ExactIndex` is the seam where an approximate index (faiss) could replace the exact search
for millions of embeddings: the matcher only calls `search(queries, k)`. 100k stored
embeddings stay interactive exactly (tests/test_matching.py measures it).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.types import Candidate, Face, Match

# Rows fetched per query: enough to see several distinct people even when one person has
# many samples; argpartition over 100k rows costs the same for k=64 or k=4096.
MIN_ROWS = 64
MAX_ROWS = 4096


class ExactIndex(object):
    """Exact inner-product search over L2-normalised rows."""

    def __init__(self, matrix):
        # type: (np.ndarray) -> None
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def __len__(self):
        return len(self.matrix)

    def similarities(self, queries):
        # type: (np.ndarray) -> np.ndarray
        return np.asarray(queries, dtype=np.float32).dot(self.matrix.T)

    def search(self, queries, k):
        # type: (np.ndarray, int) -> Tuple[np.ndarray, np.ndarray]
        """(similarities N x k, row indices N x k), best first."""
        sims = self.similarities(queries)
        k = min(k, sims.shape[1])
        if k == 0:
            return np.zeros((len(sims), 0), np.float32), np.zeros((len(sims), 0), np.int64)
        if k < sims.shape[1]:
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        else:
            part = np.tile(np.arange(k), (len(sims), 1))
        part_sims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        return np.take_along_axis(part_sims, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)


class Matcher(object):
    """Open-set identification against one model's gallery embeddings."""

    def __init__(self, vectors, person_ids, names, negative, threshold, top_k=3, index_factory=ExactIndex):
        # type: (np.ndarray, np.ndarray, Sequence[str], np.ndarray, float, int, Callable[[np.ndarray], ExactIndex]) -> None
        self.threshold = float(threshold)
        self.top_k = max(1, int(top_k))
        person_ids = np.asarray(person_ids, dtype=np.int64).reshape(-1)
        negative = np.asarray(negative, dtype=bool).reshape(-1)
        if len(names) != len(person_ids) or len(negative) != len(person_ids):
            raise ValueError("vectors, person_ids, names and negative must have one entry per row")
        self.names = {}  # type: Dict[int, str]
        for pid, name in zip(person_ids.tolist(), names):
            self.names[pid] = name
        pos = np.flatnonzero(~negative)
        neg = np.flatnonzero(negative)
        self._row_person = person_ids[pos]
        self.index = index_factory(vectors[pos]) if len(pos) else None
        self.dim = int(vectors.shape[1]) if len(person_ids) and vectors.ndim == 2 else 0
        self.people = len(np.unique(self._row_person))
        most = int(np.bincount(np.unique(self._row_person, return_inverse=True)[1]).max()) if len(pos) else 0
        self._rows = min(len(pos), max(MIN_ROWS, min(MAX_ROWS, (self.top_k + 2) * most)))
        # Negatives are few: kept as one matrix, reduced to the best negative per person.
        self._negatives = None  # type: Optional[np.ndarray]
        self._neg_column = {}   # type: Dict[int, int]
        if len(neg):
            order = neg[np.argsort(person_ids[neg], kind="stable")]
            neg_people, starts = np.unique(person_ids[order], return_index=True)
            self._negatives = np.ascontiguousarray(vectors[order], dtype=np.float32)
            self._neg_starts = starts
            self._neg_column = dict((int(p), i) for i, p in enumerate(neg_people.tolist()))

    @classmethod
    def from_gallery(cls, gallery, fingerprint, threshold, top_k=3):
        matrix = gallery.embeddings(fingerprint)
        return cls(matrix.vectors, matrix.person_ids, matrix.names, matrix.negative, threshold, top_k)

    def match(self, embeddings):
        # type: (np.ndarray) -> List[Match]
        if len(embeddings) == 0:
            return []
        queries = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
        if self.index is None:
            return [Match(None, None, 0.0, []) for _ in queries]
        if queries.shape[1] != self.dim:
            raise ValueError("the gallery's embeddings for this model are {}-d but the model made {}-d ones: "
                             "remove the people enrolled with wrong embeddings".format(self.dim, queries.shape[1]))
        sims, rows = self.index.search(queries, self._rows)
        neg_best = None
        if self._negatives is not None:
            neg_best = np.maximum.reduceat(queries.dot(self._negatives.T), self._neg_starts, axis=1)
        return [self._decide(sims[q], rows[q], neg_best[q] if neg_best is not None else None)
                for q in range(len(queries))]

    def match_faces(self, faces):
        # type: (Sequence[Face]) -> List[Optional[Match]]
        """One match per face, same order; None for a face that was not embedded."""
        usable = [i for i, f in enumerate(faces) if f.embedding is not None]
        matches = [None] * len(faces)  # type: List[Optional[Match]]
        if usable:
            for i, m in zip(usable, self.match(np.stack([faces[i].embedding for i in usable]))):
                matches[i] = m
        return matches

    def _decide(self, sims, rows, neg_best):
        # type: (np.ndarray, np.ndarray, Optional[np.ndarray]) -> Match
        people = self._row_person[rows]
        # Rows come best first, so a person's first row is their best sample.
        _, first = np.unique(people, return_index=True)
        first.sort()
        ranked = [(int(people[i]), float(sims[i])) for i in first]
        candidates = [Candidate(pid, self.names[pid], score) for pid, score in ranked[:self.top_k]]
        best = ranked[0][1]
        vetoed = False
        for pid, score in ranked:
            if score < self.threshold:
                break
            column = self._neg_column.get(pid)
            if column is not None and float(neg_best[column]) >= score:
                vetoed = True   # more like a face marked "not them" than like them
                continue
            return Match(self.names[pid], pid, _clip(score), candidates, vetoed)
        return Match(None, None, _clip(best), candidates, vetoed)


def _clip(value):
    # type: (float) -> float
    return float(min(1.0, max(0.0, value)))
