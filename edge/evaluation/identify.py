"""Open-set identification on a folder-per-person photo set (`faceedge eval identify`).

Protocol (issue 12): every person with >= 2 photos is enrolled with their first photo (sorted
by file name); their other photos are genuine probes; the photos of everyone not enrolled
(the singletons) are strangers. Per probe only the best score per enrolled person matters.
A photo without a face enrolls nobody, and as a probe it is a miss (genuine) or a rejection
(stranger): the rates are over all probes.
"""
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge.errors import FaceEdgeError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".pgm", ".ppm", ".webp")

Protocol = NamedTuple("Protocol", [
    ("enrolled", List[Tuple[str, str]]),      # (person, photo) in the gallery
    ("genuine", List[Tuple[str, str]]),       # (person, photo) probes of enrolled people
    ("strangers", List[Tuple[str, str]]),     # (person, photo) probes of people not enrolled
])

Scores = NamedTuple("Scores", [
    ("people", List[str]),           # enrolled people with a face, gallery order
    ("gallery", np.ndarray),         # their embeddings, one row each
    ("genuine_best", np.ndarray),    # per genuine probe: best score over the gallery (-inf: no face)
    ("genuine_right", np.ndarray),   # per genuine probe: the best is the right person
    ("stranger_best", np.ndarray),   # per stranger probe: best score over the gallery (-inf: no face)
])


def folder_set(root):
    # type: (str) -> List[Tuple[str, List[str]]]
    """(person, sorted photo paths) per sub-folder of root."""
    if not os.path.isdir(root):
        raise FaceEdgeError("{} is not a directory (expected one folder per person)".format(root))
    people = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        photos = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                        if f.lower().endswith(IMAGE_EXTENSIONS))
        if photos:
            people.append((name, photos))
    if not people:
        raise FaceEdgeError("{} has no person folders with photos".format(root))
    return people


def protocol(people, enroll=None):
    # type: (Sequence[Tuple[str, List[str]]], Optional[Sequence[str]]) -> Protocol
    """enroll: the people to enroll (default: all with >= 2 photos); all others are strangers."""
    chosen = set(p for p, photos in people if len(photos) >= 2) if enroll is None else set(enroll)
    enrolled, genuine, strangers = [], [], []
    for person, photos in people:
        if person in chosen:
            enrolled.append((person, photos[0]))
            genuine.extend((person, p) for p in photos[1:])
        else:
            strangers.extend((person, p) for p in photos)
    return Protocol(enrolled, genuine, strangers)


def score(proto, embeddings):
    # type: (Protocol, Dict[str, Optional[np.ndarray]]) -> Scores
    people = [person for person, photo in proto.enrolled if embeddings.get(photo) is not None]
    gallery = np.stack([embeddings[photo] for person, photo in proto.enrolled
                        if embeddings.get(photo) is not None]) if people else np.zeros((0, 0), np.float32)

    def best(probes):
        scores = np.full(len(probes), -np.inf)
        index = np.full(len(probes), -1)
        have = [i for i, (_, photo) in enumerate(probes) if embeddings.get(photo) is not None]
        if have and len(people):
            sims = np.stack([embeddings[probes[i][1]] for i in have]).dot(gallery.T)
            scores[have] = sims.max(axis=1)
            index[have] = sims.argmax(axis=1)
        return scores, index

    genuine_best, genuine_index = best(proto.genuine)
    right = np.array([i >= 0 and people[i] == person for i, (person, _) in zip(genuine_index, proto.genuine)],
                     dtype=bool)
    stranger_best, _ = best(proto.strangers)
    return Scores(people, gallery, genuine_best, right, stranger_best)


def rates(scores, threshold):
    # type: (Scores, float) -> dict
    """DIR (right person at or above the threshold) and stranger acceptance (anyone at or above)."""
    genuine = len(scores.genuine_best)
    strangers = len(scores.stranger_best)
    identified = int(np.sum(scores.genuine_right & (scores.genuine_best >= threshold)))
    accepted = int(np.sum(scores.stranger_best >= threshold))
    return {"threshold": round(float(threshold), 4),
            "dir": round(identified / float(genuine), 4) if genuine else None,
            "stranger_accept_rate": round(accepted / float(strangers), 4) if strangers else None,
            "strangers_accepted": accepted}


def threshold_at_fpir(stranger_best, fpir):
    # type: (np.ndarray, float) -> Optional[float]
    """The lowest threshold accepting at most fpir of these strangers (an oracle: set on the very
    strangers it is scored on, as the usual DIR@FPIR figure is)."""
    finite = np.sort(stranger_best[np.isfinite(stranger_best)])[::-1]
    if not len(stranger_best):
        return None
    allowed = int(np.floor(fpir * len(stranger_best)))
    if allowed >= len(finite):
        return float(finite[-1]) if len(finite) else 0.0
    return float(np.nextafter(np.float32(finite[allowed]), np.float32(2.0)))


def summary(scores):
    # type: (Scores) -> dict
    genuine = len(scores.genuine_best)
    return {"enrolled": len(scores.people), "genuine_probes": genuine, "stranger_probes": len(scores.stranger_best),
            "rank1": round(float(np.mean(scores.genuine_right)), 4) if genuine else None,
            "probes_without_face": int(np.sum(~np.isfinite(scores.genuine_best))
                                       + np.sum(~np.isfinite(scores.stranger_best)))}


def subsets(people, size, draws, seed=12):
    # type: (Sequence[Tuple[str, List[str]]], int, int, int) -> List[List[str]]
    """Random sets of `size` people among those with >= 2 photos (seeded: the same every run)."""
    multi = [p for p, photos in people if len(photos) >= 2]
    if size >= len(multi):
        return [multi]
    rng = np.random.RandomState(seed)
    return [[multi[i] for i in sorted(rng.choice(len(multi), size, replace=False))] for _ in range(draws)]


def evaluate(people, embeddings, rule_for, sizes=((10, 20), (100, 5)), enroll=None, seed=12):
    # type: (Sequence[Tuple[str, List[str]]], Dict[str, Optional[np.ndarray]], Callable[[List[str], np.ndarray], object], Sequence[Tuple[int, int]], Optional[int], int) -> dict
    """The whole report. rule_for(people, vectors) -> the rule in force (edge.open_set.Rule) for
    that gallery; sizes: (people enrolled, random draws) for the smaller galleries; enroll: that
    many random multi-photo people in the main gallery instead of all (the rest are strangers);
    seed: of every random draw."""
    chosen = subsets(people, enroll, 1, seed)[0] if enroll else None
    full = score(protocol(people, chosen), embeddings)
    rule = rule_for(full.people, full.gallery)
    report = summary(full)
    report["rule"] = rule.to_json()
    report["at_rule"] = rates(full, rule.threshold)
    for name, fpir in (("at_fpir_1e-2", 1e-2), ("at_fpir_1e-3", 1e-3)):
        t = threshold_at_fpir(full.stranger_best, fpir)
        report[name] = rates(full, t) if t is not None else None
    report["smaller_galleries"] = [_subset_report(people, embeddings, rule_for, size, draws, seed)
                                   for size, draws in sizes]
    report["seed"] = seed
    return report


def _subset_report(people, embeddings, rule_for, size, draws, seed):
    accepted = strangers = identified = genuine = 0
    thresholds = []
    worst = 0.0
    for chosen in subsets(people, size, draws, seed):
        scores = score(protocol(people, chosen), embeddings)
        rule = rule_for(scores.people, scores.gallery)
        thresholds.append(rule.threshold)
        r = rates(scores, rule.threshold)
        accepted += r["strangers_accepted"]
        strangers += len(scores.stranger_best)
        identified += int(round(r["dir"] * len(scores.genuine_best))) if r["dir"] is not None else 0
        genuine += len(scores.genuine_best)
        worst = max(worst, r["stranger_accept_rate"] or 0.0)
    return {"enrolled": size, "draws": len(thresholds),
            "threshold_min": round(min(thresholds), 4), "threshold_max": round(max(thresholds), 4),
            "stranger_accept_rate": round(accepted / float(strangers), 4) if strangers else None,
            "stranger_accept_rate_worst_draw": round(worst, 4),
            "stranger_probes": strangers,
            "dir": round(identified / float(genuine), 4) if genuine else None}
