"""Matching faces against the gallery: cosine similarity as one matrix product, top-k per
person, an open-set threshold, and negative samples that veto a person.

`ExactIndex` is the seam where an approximate index (faiss) could replace the exact search
for millions of embeddings; 100k stays interactive exactly (see `faceedge bench`).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from edge.types import Candidate, Match


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
            empty = np.zeros((len(sims), 0))
            return empty, empty.astype(np.int64)
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_sims, axis=1)
        return np.take_along_axis(part_sims, order, axis=1), np.take_along_axis(part, order, axis=1)


class Matcher(object):
    def __init__(self, vectors, person_ids, names, negative, threshold, top_k=3):
        # type: (np.ndarray, np.ndarray, Sequence[str], np.ndarray, float, int) -> None
        self.threshold = float(threshold)
        self.top_k = top_k
        positive = ~np.asarray(negative, dtype=bool) if len(names) else np.zeros(0, bool)
        self._person_ids = np.asarray(person_ids)
        self._names = list(names)
        self._positive_rows = np.flatnonzero(positive)
        self._negative_rows = np.flatnonzero(~positive)
        self.index = ExactIndex(vectors[self._positive_rows]) if len(self._positive_rows) else None
        self.negatives = ExactIndex(vectors[self._negative_rows]) if len(self._negative_rows) else None
        self.people = len(set(self._person_ids[self._positive_rows].tolist())) if len(names) else 0

    @classmethod
    def from_gallery(cls, gallery, fingerprint, threshold, top_k=3):
        matrix = gallery.embeddings(fingerprint)
        return cls(matrix.vectors, matrix.person_ids, matrix.names, matrix.negative, threshold, top_k)

    def match(self, embeddings):
        # type: (np.ndarray) -> List[Match]
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if len(embeddings) == 0:
            return []
        if self.index is None:
            return [Match(None, None, 0.0, []) for _ in embeddings]
        sims = self.index.similarities(embeddings)                      # N x positives
        neg_sims = self.negatives.similarities(embeddings) if self.negatives is not None else None
        pos_people = self._person_ids[self._positive_rows]
        people = np.unique(pos_people)
        # Best sample per person: a (queries x people) matrix.
        per_person = np.full((len(embeddings), len(people)), -1.0, dtype=np.float32)
        column = np.searchsorted(people, pos_people)
        for col in range(len(people)):
            per_person[:, col] = sims[:, column == col].max(axis=1)
        names = {}
        for row in self._positive_rows:
            names[int(self._person_ids[row])] = self._names[row]
        neg_people = self._person_ids[self._negative_rows] if neg_sims is not None else None
        results = []
        for q in range(len(embeddings)):
            order = np.argsort(-per_person[q])
            candidates = [Candidate(int(people[c]), names[int(people[c])], float(per_person[q, c]))
                          for c in order[:self.top_k]]
            identity, person_id, best, vetoed = None, None, float(per_person[q, order[0]]), False
            for c in order:
                score = float(per_person[q, c])
                if score < self.threshold:
                    break
                pid = int(people[c])
                if neg_sims is not None and np.any(neg_people == pid) and \
                        float(neg_sims[q, neg_people == pid].max()) >= score:
                    vetoed = True
                    continue
                identity, person_id, best = names[pid], pid, score
                break
            results.append(Match(identity, person_id, float(min(1.0, max(0.0, best))), candidates, vetoed))
        return results
