"""The gallery's own threshold report: leave-one-out over its samples, per model fingerprint.

Every sample is compared with every other (each one in turn is the probe, the rest the
gallery): pairs of one person are genuine, pairs of two people are impostors. From the
impostor scores comes the threshold at which a target share of stranger comparisons would be
accepted (pair-level false-accept rate, exact on the gallery's own pairs); from the genuine
scores what that threshold costs. The closest pairs of different people say who is too alike.

Computed in row blocks, so memory stays bounded: a block of rows x all samples at a time,
histograms for the distributions, and only the top impostor scores needed for the threshold.
"""
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

DEFAULT_TARGET_FAR = 1e-3
BINS = 2000                 # histogram bins over [-1, 1]: 0.001 wide
BLOCK_CELLS = 4000000       # similarity cells per block (16 MB of float32)
CLOSEST_PEOPLE = 5
MAX_CONFUSABLE = 50         # confusable pairs listed (all are counted)
RELIABLE_TAIL = 10          # impostor pairs above the threshold needed for a trustworthy estimate

Histograms = NamedTuple("Histograms", [
    ("edges", np.ndarray),      # BINS + 1
    ("genuine", np.ndarray),    # counts per bin
    ("impostor", np.ndarray),
])

Report = NamedTuple("Report", [
    ("data", dict),                      # the JSON document (docs/LIVE_ENROLL_AND_REPORT.md)
    ("histograms", Dict[str, Histograms]),   # fingerprint -> distributions, for the plot
])


def build_report(gallery, target_far=DEFAULT_TARGET_FAR, threshold=None, fingerprints=None,
                 false_match_rate=None):
    # type: (object, float, Optional[float], Optional[Sequence[str]], Optional[float]) -> Report
    """The report over every fingerprint in the gallery (or those given). Without a threshold,
    each model's is the rule in force for this gallery (edge.open_set, at false_match_rate)."""
    from edge.open_set import DEFAULT_FALSE_MATCH_RATE, derive_for_matrix
    summary = gallery.summary()
    models = []
    histograms = {}
    for fingerprint in (fingerprints if fingerprints is not None else summary.fingerprints):
        matrix = gallery.embeddings(fingerprint)
        keep = ~matrix.negative if len(matrix.negative) else np.zeros(0, bool)
        names = [n for n, k in zip(matrix.names, keep) if k]
        rule = None
        if threshold is None:
            rule = derive_for_matrix(matrix, fingerprint, false_match_rate or DEFAULT_FALSE_MATCH_RATE)
        data, hist = model_report(matrix.vectors[keep] if len(names) else np.zeros((0, 0), np.float32),
                                  matrix.person_ids[keep], names, target_far,
                                  threshold if rule is None else rule.threshold)
        data["fingerprint"] = fingerprint
        data["rule"] = rule.to_json() if rule is not None else {"threshold": round(float(threshold), 4),
                                                                "source": "given"}
        models.append(data)
        histograms[fingerprint] = hist
    document = {"version": summary.version, "generated_at": _now_iso(), "target_far": float(target_far),
                "threshold": None if threshold is None else round(float(threshold), 4), "models": models}
    return Report(document, histograms)


def model_report(vectors, person_ids, names, target_far=DEFAULT_TARGET_FAR, threshold=None):
    # type: (np.ndarray, np.ndarray, List[str], float, Optional[float]) -> Tuple[dict, Histograms]
    person_ids = np.asarray(person_ids, np.int64).reshape(-1)
    order = np.argsort(person_ids, kind="stable")
    vectors = np.ascontiguousarray(np.asarray(vectors, np.float32)[order]) if len(order) else vectors
    person_ids = person_ids[order]
    names = [names[i] for i in order]
    people, starts, counts = np.unique(person_ids, return_index=True, return_counts=True)
    person_index = np.searchsorted(people, person_ids)
    person_names = [names[s] for s in starts]
    n = len(person_ids)
    genuine_pairs = int(np.sum(counts * (counts - 1) // 2))
    impostor_pairs = n * (n - 1) // 2 - genuine_pairs
    edges = np.linspace(-1.0, 1.0, BINS + 1)
    hist = Histograms(edges, np.zeros(BINS, np.int64), np.zeros(BINS, np.int64))
    keep_top, top = int(np.floor(target_far * impostor_pairs)) + 1, np.zeros(0, np.float32)  # for the threshold
    sums, extremes = {"genuine": 0.0, "impostor": 0.0}, {"genuine": [np.inf, -np.inf], "impostor": [np.inf, -np.inf]}
    # per probe, leave-one-out: its best genuine and best impostor score
    best_genuine, best_impostor = np.full(n, -np.inf, np.float32), np.full(n, -np.inf, np.float32)
    closest, confusable = {}, {}   # (person, person) -> the highest similarity between their samples
    block = max(1, BLOCK_CELLS // max(1, n))
    for a in range(0, n, block):
        b = min(n, a + block)
        sims = vectors[a:b].dot(vectors.T)
        same = person_index[a:b, None] == person_index[None, :]
        rows = np.arange(a, b)
        sims[rows - a, rows] = -np.inf                  # leave the probe itself out
        best_genuine[a:b] = np.where(same, sims, -np.inf).max(axis=1)
        other = np.where(same, -np.inf, sims)
        best_impostor[a:b] = other.max(axis=1) if n else best_impostor[a:b]
        _closest_people(other, person_index, starts, rows, closest)
        if threshold is not None:
            _confusable(other, person_index, starts, rows, threshold, confusable)
        upper = np.arange(n)[None, :] > rows[:, None]   # each pair once
        top = _accumulate(sims, same & upper, ~same & upper, hist, sums, extremes, top, keep_top)
    top = np.sort(top)[::-1]       # highest first
    suggested, reliable, note = _threshold(top, impostor_pairs, target_far)
    if suggested is not None:   # published with 4 decimals: round up, so the rounded value keeps the rate
        suggested = min(1.0, float(np.ceil(suggested * 1e4 - 1e-9) / 1e4))
    closest_people = _named_pairs(closest, person_names)[:CLOSEST_PEOPLE]
    alike = _named_pairs(confusable, person_names)
    data = {
        "people": int(len(people)),
        "samples": int(n),
        "people_with_several_samples": int(np.sum(counts >= 2)),
        "genuine": _summary(hist.genuine, edges, genuine_pairs, sums["genuine"], extremes["genuine"]),
        "impostor": _summary(hist.impostor, edges, impostor_pairs, sums["impostor"], extremes["impostor"]),
        "closest_pair": closest_people[0] if closest_people else None,
        "closest_people": closest_people,
        # pairs of enrolled people whose samples match each other at the threshold in force
        "confusable": None if threshold is None else alike[:MAX_CONFUSABLE],
        "confusable_pairs": None if threshold is None else len(alike),
        "stranger_max": _r(extremes["impostor"][1]) if impostor_pairs else None,
        "suggested_threshold": _r(suggested),
        "reliable": reliable,
        "note": note,
        "at_suggested": _rates(suggested, hist, top, impostor_pairs, genuine_pairs, best_genuine, best_impostor),
        "at_threshold": _rates(threshold, hist, top, impostor_pairs, genuine_pairs, best_genuine, best_impostor),
    }
    return data, hist


def _accumulate(sims, genuine, impostor, hist, sums, extremes, top, keep_top):
    # type: (np.ndarray, np.ndarray, np.ndarray, Histograms, dict, dict, np.ndarray, int) -> np.ndarray
    """One block's pair scores into the histograms, sums and extremes; returns the highest
    impostor scores kept so far (the suggested threshold needs only those)."""
    for kind, mask in (("genuine", genuine), ("impostor", impostor)):
        scores = sims[mask]
        if not len(scores):
            continue
        hist_counts = getattr(hist, kind)
        hist_counts += np.histogram(np.clip(scores, -1.0, 1.0), bins=hist.edges)[0]
        sums[kind] += float(scores.sum(dtype=np.float64))
        extremes[kind][0] = min(extremes[kind][0], float(scores.min()))
        extremes[kind][1] = max(extremes[kind][1], float(scores.max()))
        if kind == "impostor":
            top = np.concatenate([top, scores.astype(np.float32)])
            if len(top) > keep_top:
                top = np.partition(top, len(top) - keep_top)[-keep_top:]
    return top


def _named_pairs(pairs, person_names):
    # type: (Dict[Tuple[int, int], float], List[str]) -> List[dict]
    """Pairs of people by their names, most alike first."""
    return [{"names": [person_names[p], person_names[q]], "similarity": _r(v)}
            for (p, q), v in sorted(pairs.items(), key=lambda item: -item[1])]


def _closest_people(other, person_index, starts, rows, closest):
    # type: (np.ndarray, np.ndarray, np.ndarray, np.ndarray, Dict[Tuple[int, int], float]) -> None
    """The best score of each probe against each other person; the top few per probe are kept."""
    if len(starts) < 2:
        return
    per_person = np.maximum.reduceat(other, starts, axis=1)       # block x people
    take = min(3, per_person.shape[1])
    best = np.argpartition(-per_person, take - 1, axis=1)[:, :take]
    for r, row in enumerate(best):
        p = int(person_index[rows[r]])
        for q in row.tolist():
            score = float(per_person[r, q])
            if q == p or not np.isfinite(score):
                continue
            key = (min(p, q), max(p, q))
            if score > closest.get(key, -np.inf):
                closest[key] = score


def _confusable(other, person_index, starts, rows, threshold, confusable):
    # type: (np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, Dict[Tuple[int, int], float]) -> None
    """Pairs of people where a sample of one scores at or above the threshold against the other."""
    if len(starts) < 2:
        return
    per_person = np.maximum.reduceat(other, starts, axis=1)
    for r, q in zip(*np.nonzero(per_person >= threshold)):
        p = int(person_index[rows[r]])
        key = (min(p, int(q)), max(p, int(q)))
        confusable[key] = max(confusable.get(key, -np.inf), float(per_person[r, q]))


def _threshold(top, impostor_pairs, target_far):
    # type: (np.ndarray, int, float) -> Tuple[Optional[float], bool, Optional[str]]
    """Midway between the m-th and (m+1)-th highest impostor score, m = floor(target * pairs):
    then exactly m gallery impostor pairs (a share <= target) score at or above it."""
    if impostor_pairs == 0:
        return None, False, "needs at least two people"
    allowed = int(np.floor(target_far * impostor_pairs))
    reliable = allowed >= RELIABLE_TAIL
    note = None
    if allowed == 0:
        threshold = float(min(1.0, top[0] + 0.01))
        note = ("only {} impostor pairs: a false-accept rate of {:g} cannot be measured (needs {}); suggested = "
                "just above the highest stranger score".format(impostor_pairs, target_far,
                                                               int(np.ceil(RELIABLE_TAIL / target_far))))
    else:
        threshold = float((top[allowed - 1] + top[allowed]) / 2.0)
        if not reliable:
            note = ("{} impostor pairs: the threshold rests on {} score{}; enroll more people for a steadier "
                    "estimate (about {} pairs)".format(impostor_pairs, allowed, "" if allowed == 1 else "s",
                                                       int(np.ceil(RELIABLE_TAIL / target_far))))
    return threshold, reliable, note


def _rates(threshold, hist, top, impostor_pairs, genuine_pairs, best_genuine, best_impostor):
    """What a threshold does on the gallery itself."""
    if threshold is None:
        return None
    t = float(threshold)
    if len(top) and t > float(top[-1]):
        accepted = int(np.sum(top >= t))        # exact where the kept top scores reach
    else:
        accepted = int(hist.impostor[np.searchsorted(hist.edges, t, side="right") - 1:].sum())
    rejected = int(hist.genuine[:max(0, np.searchsorted(hist.edges, t, side="left") - 1)].sum())
    probes = np.isfinite(best_genuine)            # probes whose person has another sample
    identified = probes & (best_genuine >= t) & (best_genuine > best_impostor)
    strangers = np.isfinite(best_impostor)
    return {
        "threshold": _r(t),
        "false_accept_rate": _r(accepted / float(impostor_pairs), 6) if impostor_pairs else None,
        "false_reject_rate": _r(rejected / float(genuine_pairs), 6) if genuine_pairs else None,
        "identification_rate": _r(float(identified.sum()) / probes.sum(), 4) if probes.any() else None,
        "stranger_accept_rate": _r(float((best_impostor[strangers] >= t).sum()) / strangers.sum(), 4)
        if strangers.any() else None,
    }


def _summary(counts, edges, total, total_sum, extremes):
    if not total:
        return None
    cumulative = np.cumsum(counts)
    centres = (edges[:-1] + edges[1:]) / 2.0

    def quantile(q):   # a bin centre, kept within the exact extremes
        value = float(centres[min(len(centres) - 1, int(np.searchsorted(cumulative, q * total, side="left")))])
        return min(extremes[1], max(extremes[0], value))
    return {"pairs": int(total), "min": _r(extremes[0]), "p01": _r(quantile(0.01)), "p05": _r(quantile(0.05)),
            "median": _r(quantile(0.5)), "mean": _r(total_sum / total), "p95": _r(quantile(0.95)),
            "p99": _r(quantile(0.99)), "max": _r(extremes[1])}


def _r(value, digits=4):
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _now_iso():
    # type: () -> str
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plot_report(report, path):
    # type: (Report, str) -> bool
    """A PNG of the two distributions per model; False (nothing written) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = report.data["models"]
    fig, axes = plt.subplots(max(1, len(models)), 1, figsize=(8, 3.2 * max(1, len(models))), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        hist = report.histograms[model["fingerprint"]]
        centres = (hist.edges[:-1] + hist.edges[1:]) / 2.0
        width = 10   # merge bins: 0.01 wide on the plot
        for counts, label, colour in ((hist.impostor, "different people", "tab:red"),
                                      (hist.genuine, "same person", "tab:green")):
            if counts.sum():
                merged = counts[:len(counts) // width * width].reshape(-1, width).sum(axis=1).astype(float)
                merged[merged == 0] = np.nan      # empty bins: a gap, not a drop to zero on the log scale
                ax.plot(centres[width // 2::width][:len(merged)], merged / float(counts.sum()), label=label,
                        color=colour, marker=".", markersize=3)
        if model["suggested_threshold"] is not None:
            ax.axvline(model["suggested_threshold"], color="black", linestyle="--",
                       label="suggested {:.3f} (FAR {:g})".format(model["suggested_threshold"],
                                                                 report.data["target_far"]))
        if report.data.get("threshold") is not None:
            ax.axvline(report.data["threshold"], color="grey", linestyle=":",
                       label="current {:.3f}".format(report.data["threshold"]))
        ax.set_xlim(-0.3, 1.0)
        ax.set_yscale("log")      # the tails decide the threshold: make them visible
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("share of pairs (log)")
        ax.set_title("model {}: {} people, {} samples".format(model["fingerprint"][:12], model["people"],
                                                               model["samples"]))
        ax.legend(fontsize="small", loc="lower center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
