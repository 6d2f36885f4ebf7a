"""The open-set threshold: FPIR target + gallery size -> per-comparison FAR -> impostor quantile."""
import json
import os

import numpy as np
import pytest

from edge import open_set
from edge.evaluation.impostors import impostor_scores, quantile_points
from edge.models.manifest import MODELS
from edge.open_set import derive, per_comparison_far, quantile_threshold
from tests.cli import faceedge

TABLE = {"models": [{"fingerprint": "f" * 64, "flip": False, "name": "toy", "measured_on": "toy set",
                     "impostor_pairs": 100000,
                     "points": [[0.1, 0.2], [0.01, 0.3], [0.001, 0.4], [0.0001, 0.5]]}]}


def test_per_comparison_far_gives_the_target_over_the_gallery():
    for people in (1, 10, 844, 100000):
        far = per_comparison_far(0.01, people)
        assert 1 - (1 - far) ** people == pytest.approx(0.01, rel=1e-9)
    assert per_comparison_far(0.01, 1) == pytest.approx(0.01)
    assert per_comparison_far(0.01, 1000) == pytest.approx(0.01 / 1000, rel=0.01)


def test_quantiles_interpolate_in_log_far_and_extrapolate_past_the_tail():
    points = TABLE["models"][0]["points"]
    assert quantile_threshold(points, 0.01) == (pytest.approx(0.3), False)
    assert quantile_threshold(points, 10 ** -2.5) == (pytest.approx(0.35), False)
    assert quantile_threshold(points, 0.5) == (pytest.approx(0.2), False)     # the table's loosest point
    value, extrapolated = quantile_threshold(points, 1e-6)
    assert extrapolated and value == pytest.approx(0.7)


def test_threshold_grows_with_the_gallery_and_says_where_it_came_from():
    small = derive("f" * 64, 10, 0.01, table=TABLE)
    large = derive("f" * 64, 1000, 0.01, table=TABLE)
    assert small.source == large.source == "table"
    assert small.threshold < large.threshold
    assert large.per_comparison_far == pytest.approx(1.005e-5, rel=0.01)
    data = large.to_json()
    assert data["basis"]["measured_on"] == "toy set" and data["people"] == 1000
    assert "extrapolated" in data["basis"]["note"]
    fixed = derive("f" * 64, 1000, 0.01, override=0.42, table=TABLE)
    assert fixed.source == "override" and fixed.threshold == 0.42


def test_without_a_table_the_gallerys_own_scores_are_used_and_said():
    rng = np.random.RandomState(0)
    vectors = rng.randn(200, 64).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    def own(far, n=200):
        from edge.gallery.report import model_report
        return model_report(vectors[:n], np.arange(n), [str(i) for i in range(n)], target_far=far)[0]
    rule = derive("0" * 64, 200, 0.1, own_report=own, model_default=0.1, table=TABLE)
    assert rule.source == "gallery" and "leave-one-out" in rule.basis["measured_on"]
    scores = impostor_scores(vectors, [str(i) for i in range(200)])
    # the share of strangers matched, predicted from the gallery's pairs, is the target
    assert 1 - (1 - np.mean(scores >= rule.threshold)) ** 200 == pytest.approx(0.1, abs=0.02)
    floor = derive("0" * 64, 3, 0.01, own_report=lambda far: own(far, 3), model_default=0.9, table=TABLE)
    assert floor.threshold == 0.9 and "floor" in floor.basis["note"]
    lone = derive("0" * 64, 1, 0.01, own_report=own, model_default=0.363, table=TABLE)
    assert lone.source == "model_default" and lone.threshold == 0.363


def test_quantile_points_are_exact_shares_of_impostor_pairs():
    rng = np.random.RandomState(1)
    scores = rng.randn(100000) * 0.1
    for far, cosine in quantile_points(scores):
        assert np.sum(scores >= cosine) == int(np.floor(far * len(scores) + 1e-6)) or \
            abs(np.mean(scores >= cosine) - far) < far * 0.01


def test_shipped_table_covers_both_pinned_recognizers_and_holds_only_numbers():
    with open(open_set.TABLE_PATH) as f:
        table = json.load(f)
    assert os.path.getsize(open_set.TABLE_PATH) < 20000
    fingerprints = set(e["fingerprint"] for e in table["models"])
    assert MODELS["sface"].converted_sha256 in fingerprints
    assert MODELS["w600k_mbf"].sha256 in fingerprints
    for entry in table["models"]:
        assert set(entry) == {"fingerprint", "flip", "name", "measured_on", "impostor_pairs", "points"}
        fars = [p[0] for p in entry["points"]]
        cosines = [p[1] for p in entry["points"]]
        assert fars == sorted(fars, reverse=True) and cosines == sorted(cosines)
        assert entry["impostor_pairs"] * fars[-1] >= 5      # the tail rests on real pairs


def _small_set(facedata, tmp_path, people=12, singletons=12):
    """A folder-per-person set of links to lfw-dev photos (nothing copied)."""
    root = os.path.join(facedata, "lfw-dev", "images")
    names = sorted(os.listdir(root))
    multi = [n for n in names if 2 <= len(os.listdir(os.path.join(root, n))) <= 4][:people]
    single = [n for n in names if len(os.listdir(os.path.join(root, n))) == 1][:singletons]
    for name in multi + single:
        os.symlink(os.path.join(root, name), str(tmp_path / name))
    return str(tmp_path)


def test_eval_identify_reports_the_rule_and_the_rates(model_dir, facedata, tmp_path):
    root = _small_set(facedata, tmp_path)
    code, out, err = faceedge("eval", "identify", "--root", root, "--json", "--model-dir", model_dir)
    assert code == 0, err
    report = json.loads(out)
    assert report["enrolled"] == 12 and report["stranger_probes"] == 12
    assert report["rank1"] >= 0.9
    rule = report["rule"]
    assert rule["source"] == "table" and rule["people"] == 12 and rule["false_match_rate"] == 0.01
    assert report["at_rule"]["threshold"] == rule["threshold"]
    assert report["at_rule"]["dir"] >= 0.8 and report["at_rule"]["strangers_accepted"] <= 1
    assert set(report["at_fpir_1e-2"]) == {"threshold", "dir", "stranger_accept_rate", "strangers_accepted"}
    assert [s["enrolled"] for s in report["smaller_galleries"]] == [10, 100]
    code, text, err = faceedge("eval", "identify", "--root", root, "--threshold", "0.99", "--model-dir", model_dir)
    assert code == 0 and "override" in text and "strangers matched 0.00%" in text


def test_eval_identify_people_enrolls_a_seeded_random_subset(model_dir, facedata, tmp_path):
    root = _small_set(facedata, tmp_path)
    args = ("eval", "identify", "--root", root, "--json", "--model-dir", model_dir, "--people", "5")
    runs = [json.loads(faceedge(*(args + ("--seed", seed)))[1]) for seed in ("1", "1", "2")]
    assert runs[0]["enrolled"] == 5 and runs[0]["rule"]["people"] == 5 and runs[0]["seed"] == 1
    # the 7 multi-photo people left out are strangers now, with all their photos
    assert runs[0]["stranger_probes"] > 12 + 7
    assert runs[0]["at_rule"] == runs[1]["at_rule"] and runs[0]["genuine_probes"] == runs[1]["genuine_probes"]
    assert runs[2]["seed"] == 2
    code, _, err = faceedge(*(args[:-1] + ("0",)))
    assert code != 0 and "--people" in err
