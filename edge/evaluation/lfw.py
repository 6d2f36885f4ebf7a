"""The standard LFW verification protocol over a pairs file (10-fold, or as many folds as it has)."""
import math
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.errors import FaceEdgeError

Pair = NamedTuple("Pair", [("left", str), ("right", str), ("same", bool), ("fold", int)])

LfwReport = NamedTuple("LfwReport", [
    ("pairs", int),
    ("folds", int),
    ("accuracy_mean", float),
    ("accuracy_std", float),
    ("fold_accuracies", List[float]),
    ("fold_thresholds", List[float]),
    ("roc_auc", float),
    ("tar_at_far_1e3", float),
    ("threshold_at_far_1e3", float),
    ("photos", int),
    ("photos_without_face", List[str]),
    ("pairs_without_face", int),
])


def _image_path(root, name, number):
    # type: (str, str, str) -> str
    return os.path.join(root, name, "{}_{:04d}.jpg".format(name, int(number)))


def read_pairs(path, root):
    # type: (str, str) -> List[Pair]
    """LFW's pairs.txt: a header `folds<TAB>n`, then per fold n same and n different pairs."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except (IOError, OSError) as exc:
        raise FaceEdgeError("cannot read pairs file {}: {}".format(path, exc))
    try:
        folds, per_half = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise FaceEdgeError("{}: first line must be `FOLDS<TAB>PAIRS_PER_HALF`".format(path))
    pairs = []
    for index, parts in enumerate(lines[1:]):
        fold = index // (2 * per_half)
        if len(parts) == 3:
            pairs.append(Pair(_image_path(root, parts[0], parts[1]), _image_path(root, parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(_image_path(root, parts[0], parts[1]), _image_path(root, parts[2], parts[3]), False, fold))
        else:
            raise FaceEdgeError("{}: line {} is not a pair".format(path, index + 2))
    if len(pairs) != folds * 2 * per_half:
        raise FaceEdgeError("{}: expected {} pairs, found {}".format(path, folds * 2 * per_half, len(pairs)))
    return pairs


def _accuracy(scores, labels, threshold):
    # type: (np.ndarray, np.ndarray, float) -> float
    return float(np.mean((scores >= threshold) == labels))


def best_threshold(scores, labels):
    # type: (np.ndarray, np.ndarray) -> float
    candidates = np.unique(scores[np.isfinite(scores)])
    if len(candidates) == 0:
        return 0.0
    mids = np.concatenate([[candidates[0] - 1e-6], (candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-6]])
    accuracies = [(_accuracy(scores, labels, t), -abs(t)) for t in mids]
    return float(mids[int(np.argmax([a for a, _ in accuracies]))])


def roc_auc(scores, labels):
    # type: (np.ndarray, np.ndarray) -> float
    """Probability that a genuine pair outscores an impostor pair (ties count half)."""
    genuine, impostor = scores[labels], scores[~labels]
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([genuine, impostor]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([genuine, impostor])[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    rank_sum = ranks[:len(genuine)].sum()
    return float((rank_sum - len(genuine) * (len(genuine) + 1) / 2.0) / (len(genuine) * len(impostor)))


def tar_at_far(scores, labels, far):
    # type: (np.ndarray, np.ndarray, float) -> Tuple[float, float]
    """(TAR, threshold) at the lowest threshold whose false-accept rate is <= far."""
    impostor = np.sort(scores[~labels])[::-1]
    allowed = int(math.floor(far * len(impostor)))
    threshold = float(impostor[allowed]) + 1e-9 if allowed < len(impostor) else float(impostor[-1])
    return float(np.mean(scores[labels] >= threshold)), threshold


def evaluate(pairs, embeddings):
    # type: (Sequence[Pair], Dict[str, Optional[np.ndarray]]) -> LfwReport
    """Scores each pair; a pair with a missing face scores -inf for same-person pairs and +inf
    for different-person pairs, i.e. it is wrong at every threshold."""
    labels = np.array([p.same for p in pairs])
    scores = np.empty(len(pairs))
    missing = 0
    for i, p in enumerate(pairs):
        a, b = embeddings.get(p.left), embeddings.get(p.right)
        if a is None or b is None:
            missing += 1
            scores[i] = -np.inf if p.same else np.inf
        else:
            scores[i] = float(np.dot(a, b))
    folds = sorted(set(p.fold for p in pairs))
    fold_of = np.array([p.fold for p in pairs])
    accuracies, thresholds = [], []
    for fold in folds:
        test = fold_of == fold
        train = ~test if len(folds) > 1 else test
        threshold = best_threshold(scores[train], labels[train])
        thresholds.append(threshold)
        accuracies.append(_accuracy(scores[test], labels[test], threshold))
    tar, far_threshold = tar_at_far(scores, labels, 1e-3)
    no_face = sorted(path for path, e in embeddings.items() if e is None)
    return LfwReport(len(pairs), len(folds), float(np.mean(accuracies)), float(np.std(accuracies)),
                     accuracies, thresholds, roc_auc(scores, labels), tar, far_threshold,
                     len(embeddings), no_face, missing)
