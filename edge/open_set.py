"""The open-set threshold: from a target share of strangers matched (FPIR) and the gallery size.

A stranger's probe is compared with each of the N enrolled people; it is matched to someone
if any comparison passes the threshold t. With a per-comparison false-accept rate
FAR(t) = P(impostor cosine >= t), and comparisons taken as independent,

    FPIR = 1 - (1 - FAR)^N      so      FAR = 1 - (1 - FPIR)^(1/N)  (about FPIR / N)

and t is the impostor distribution's (1 - FAR) quantile. Independence is the cautious side:
strangers differ in how alike they look to everyone, and by Jensen's inequality that spread
makes the real FPIR at most the formula's. The impostor quantiles of each pinned model come
from `edge/data/impostor_quantiles.json` (measured on labelled photos, `faceedge eval
impostors`); a model without a table falls back to its gallery's own leave-one-out impostor
scores (edge.gallery.report), and the rule says so.
"""
import json
import logging
import math
import os
import threading
from typing import Callable, Dict, List, Optional

import numpy as np

log = logging.getLogger("faceedge.open_set")

DEFAULT_FALSE_MATCH_RATE = 0.01
TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "impostor_quantiles.json")

_tables = {}   # type: Dict[str, dict]


class Rule(object):
    """The threshold in force and where it came from (published in stats and gallery/state)."""

    def __init__(self, threshold, source, false_match_rate, people, per_comparison_far=None, basis=None):
        # type: (float, str, float, int, Optional[float], Optional[dict]) -> None
        self.threshold = float(threshold)
        self.source = source                  # override | table | gallery | model_default
        self.false_match_rate = float(false_match_rate)
        self.people = int(people)
        self.per_comparison_far = per_comparison_far
        self.basis = basis or {}

    def to_json(self):
        # type: () -> dict
        far = self.per_comparison_far
        return {"threshold": round(self.threshold, 4), "source": self.source,
                "false_match_rate": self.false_match_rate, "people": self.people,
                "per_comparison_far": None if far is None else float("{:.3g}".format(far)),
                "basis": self.basis}

    def __repr__(self):
        return "Rule({})".format(self.to_json())


def per_comparison_far(false_match_rate, people):
    # type: (float, int) -> float
    """FAR per comparison that gives false_match_rate over `people` independent comparisons."""
    people = max(1, int(people))
    return -math.expm1(math.log1p(-float(false_match_rate)) / people)


def load_table(path=TABLE_PATH):
    # type: (str) -> dict
    if path not in _tables:
        try:
            with open(path) as f:
                _tables[path] = json.load(f)
        except (IOError, OSError, ValueError):
            _tables[path] = {"models": []}
    return _tables[path]


def table_entry(fingerprint, flip=None, table=None):
    # type: (str, Optional[bool], Optional[dict]) -> Optional[dict]
    """The measured quantiles for this model (the same flip setting preferred)."""
    entries = [e for e in (table or load_table())["models"] if e.get("fingerprint") == fingerprint]
    entries.sort(key=lambda e: e.get("flip") != flip)
    return entries[0] if entries else None


def quantile_threshold(points, far):
    # type: (List[List[float]], float) -> (float, bool)
    """(threshold, extrapolated): the cosine with this share of impostor pairs at or above it,
    interpolated linearly in log10(FAR) between the table's points ([far, cosine], far
    decreasing); beyond the measured tail, the last two points' slope is continued."""
    fars = np.log10([p[0] for p in points])
    cosines = np.array([p[1] for p in points], np.float64)
    x = math.log10(max(far, 1e-12))
    if x >= fars[0]:
        return float(cosines[0]), False
    if x >= fars[-1]:
        return float(np.interp(-x, -fars, cosines)), False
    slope = (cosines[-1] - cosines[-2]) / (fars[-1] - fars[-2])
    return float(min(1.0, cosines[-1] + slope * (x - fars[-1]))), True


def derive(fingerprint, people, false_match_rate=DEFAULT_FALSE_MATCH_RATE, override=None, flip=None,
           own_report=None, model_default=None, table=None):
    # type: (str, int, float, Optional[float], Optional[bool], Optional[Callable[[float], dict]], Optional[float], Optional[dict]) -> Rule
    """The rule for a gallery of `people` enrolled people under this model.

    override: recognition.threshold when set (> 0). own_report(far) -> the gallery's threshold
    report (edge.gallery.report.model_report data) at that pair-level FAR, for a model without
    a table. model_default: the model's 1:1 threshold, the last resort (no table, < 2 people)."""
    far = per_comparison_far(false_match_rate, people)
    if override:
        return Rule(override, "override", false_match_rate, people, None,
                    {"note": "recognition.threshold is set: the false-match target is not applied"})
    entry = table_entry(fingerprint, flip, table)
    if entry is not None:
        threshold, extrapolated = quantile_threshold(entry["points"], far)
        basis = {"model": entry.get("name"), "measured_on": entry.get("measured_on"),
                 "impostor_pairs": entry.get("impostor_pairs"), "flip": entry.get("flip")}
        if extrapolated:
            basis["note"] = "beyond the measured tail (FAR {:g}): extrapolated".format(entry["points"][-1][0])
        if flip is not None and entry.get("flip") is not None and entry.get("flip") != flip:
            basis["note"] = "measured with flip={}, used with flip={}".format(entry.get("flip"), flip)
        return Rule(_round_up(threshold), "table", false_match_rate, people, far, basis)
    data = own_report(far) if own_report is not None and people >= 2 else None
    if data is not None and data.get("suggested_threshold") is not None:
        basis = {"measured_on": "this gallery's own samples (leave-one-out), no table for model {}".format(
                     fingerprint[:12]),
                 "impostor_pairs": (data.get("impostor") or {}).get("pairs"), "reliable": data.get("reliable")}
        threshold = float(data["suggested_threshold"])
        if data.get("note"):
            basis["note"] = data["note"]
        if not data.get("reliable") and model_default and model_default > threshold:
            # too few pairs to see the tail: the model's 1:1 threshold is the floor
            threshold = float(model_default)
            basis["note"] = (basis.get("note", "") + "; the model's 1:1 threshold {:.4f} is used as the "
                             "floor".format(threshold)).lstrip("; ")
        return Rule(threshold, "gallery", false_match_rate, people, far, basis)
    return Rule(model_default or 0.0, "model_default", false_match_rate, people, far,
                {"note": "no impostor table for model {} and fewer than two people to measure: the "
                         "model's 1:1 threshold".format(fingerprint[:12])})


def derive_for_matrix(matrix, fingerprint, false_match_rate=DEFAULT_FALSE_MATCH_RATE, override=None, flip=None,
                      model_default=None):
    # type: (object, str, float, Optional[float], Optional[bool], Optional[float]) -> Rule
    """The rule for one model's gallery embeddings (gallery.embeddings(fingerprint))."""
    positive = ~np.asarray(matrix.negative, bool) if len(matrix.negative) else np.zeros(0, bool)
    ids = np.asarray(matrix.person_ids, np.int64)[positive]
    people = int(len(np.unique(ids)))

    def own_report(far):
        from edge.gallery.report import model_report
        names = [n for n, keep in zip(matrix.names, positive) if keep]
        return model_report(np.asarray(matrix.vectors)[positive], ids, names, target_far=far)[0]
    return derive(fingerprint, people, false_match_rate, override, flip, own_report, model_default)


def _round_up(value):
    # type: (float) -> float
    """Published with 4 decimals: rounded up, so the published value keeps the rate."""
    return min(1.0, math.ceil(value * 1e4 - 1e-9) / 1e4)


def matcher_for(gallery, pipeline, false_match_rate=DEFAULT_FALSE_MATCH_RATE, override=None, top_k=3):
    """(Matcher, Rule) for the pipeline's model over this gallery, at the rule in force."""
    from edge.matching import Matcher
    fingerprint = pipeline.recognizer_fingerprint
    matrix = gallery.embeddings(fingerprint)
    rule = derive_for_matrix(matrix, fingerprint, false_match_rate, override,
                             bool(getattr(pipeline.recognizer, "flip", False)), pipeline.threshold)
    return Matcher(matrix.vectors, matrix.person_ids, matrix.names, matrix.negative, rule.threshold, top_k), rule


def describe(rule):
    # type: (Rule) -> str
    """One line for logs and the CLI."""
    if rule.source == "override":
        return "threshold {:.4f} (recognition.threshold, fixed)".format(rule.threshold)
    text = "threshold {:.4f} for {} enrolled at false_match_rate {:g} (per comparison {:.3g}; from {})".format(
        rule.threshold, rule.people, rule.false_match_rate, rule.per_comparison_far or 0.0,
        rule.basis.get("measured_on") or rule.source)
    return text + ("; " + rule.basis["note"] if rule.basis.get("note") else "")


class RuleSource(object):
    """The daemon's rule for one model over a live gallery: derived once per gallery version
    (the matcher thread, gallery/state and stats all ask; the fallback costs O(samples^2))."""

    def __init__(self, gallery, fingerprint, flip=None, model_default=None, false_match_rate=DEFAULT_FALSE_MATCH_RATE,
                 override=None):
        # type: (object, str, Optional[bool], Optional[float], float, Optional[float]) -> None
        self.gallery = gallery
        self.fingerprint = fingerprint
        self.flip = flip
        self.model_default = model_default
        self.false_match_rate = false_match_rate
        self.override = override or None
        self._cached = None     # (key, Rule)
        self._logged = None     # what was last logged (the rule is logged when it changes)
        self._lock = threading.Lock()

    def configure(self, false_match_rate, override):
        # type: (float, Optional[float]) -> None
        """New settings (a reload): the next rule() derives again."""
        with self._lock:
            self.false_match_rate, self.override = float(false_match_rate), override or None

    def rule(self, matrix=None, version=None):
        # type: (object, Optional[int]) -> Rule
        """The rule at this gallery version (matrix: gallery.embeddings(fingerprint), if at hand)."""
        version = self.gallery.version if version is None else version
        with self._lock:
            key = (version, self.false_match_rate, self.override)
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
            if matrix is None:
                matrix = self.gallery.embeddings(self.fingerprint)
            rule = derive_for_matrix(matrix, self.fingerprint, self.false_match_rate, self.override, self.flip,
                                     self.model_default)
            self._cached = (key, rule)
        return rule

    def matcher(self, gallery=None, top_k=3):
        """(Matcher, Rule) for the gallery as it is now, at the rule in force for it."""
        from edge.matching import Matcher
        gallery = gallery or self.gallery
        version = gallery.version
        matrix = gallery.embeddings(self.fingerprint)
        rule = self.rule(matrix, version)
        if self._logged != (version, rule.threshold, rule.source):
            self._logged = (version, rule.threshold, rule.source)
            log.info("open-set rule: %s", describe(rule))
        return Matcher(matrix.vectors, matrix.person_ids, matrix.names, matrix.negative, rule.threshold, top_k), rule

    def state(self, rule=None):
        # type: (Optional[Rule]) -> dict
        """For stats and gallery/state: the rule (default: for the gallery now), and samples this
        model cannot use."""
        data = (rule or self.rule()).to_json()
        data["model"] = self.fingerprint[:12]
        unusable = getattr(self.gallery, "unusable_samples", None)
        if callable(unusable):
            count, names = unusable(self.fingerprint)
            data["not_usable"] = {"samples": count, "people": names,
                                  "why": "imported as embeddings of another model, without face crops: "
                                         "enroll these people again" if count else None}
        return data
