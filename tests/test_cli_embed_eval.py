import json
import os
import shutil

import pytest

from tests.cli import faceedge


def test_embed_json_lines_with_bad_inputs(model_dir, facedata, tmp_path):
    good = os.path.join(facedata, "known", "obama.jpg")
    truncated = str(tmp_path / "truncated.jpg")
    with open(good, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[:len(data) // 2])
    not_image = str(tmp_path / "notes.jpg")
    with open(not_image, "w") as f:
        f.write("this is not a picture")
    missing = str(tmp_path / "missing.jpg")
    blank = str(tmp_path / "blank.png")
    import cv2
    import numpy as np
    cv2.imwrite(blank, np.full((200, 300, 3), 200, np.uint8))

    code, out, err = faceedge("embed", "--json", "--model-dir", model_dir, good, truncated, not_image, missing, blank)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [good, truncated, not_image, missing, blank]
    assert code == 1  # some inputs failed; the others were still processed

    first = lines[0]
    assert first["error"] is None and len(first["faces"]) == 1
    face = first["faces"][0]
    assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5 and len(face["embedding"]) == 128
    assert 0.9 < face["score"] <= 1.0
    assert sum(v * v for v in face["embedding"]) == pytest.approx(1.0, abs=1e-3)

    assert "truncated" in lines[1]["error"] and lines[1]["faces"] == []
    assert "not a JPEG, PNG" in lines[2]["error"]
    assert "no such file" in lines[3]["error"]
    assert lines[4]["error"] is None and lines[4]["faces"] == []


def test_embed_arcface_profile_gives_512_d(model_dir, facedata):
    code, out, _ = faceedge("embed", "--json", "--profile", "arcface-mbf", "--model-dir", model_dir,
                            os.path.join(facedata, "scenes", "two_people.jpg"))
    record = json.loads(out)
    assert code == 0 and len(record["faces"]) == 2
    assert all(len(f["embedding"]) == 512 for f in record["faces"])


def test_embed_with_missing_models_names_the_fetch_command(tmp_path, facedata):
    code, out, err = faceedge("embed", "--json", "--model-dir", str(tmp_path),
                              os.path.join(facedata, "known", "obama.jpg"))
    assert code == 1 and out == ""
    assert "faceedge models fetch --profile default" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_lfw_on_a_subset(model_dir, facedata, tmp_path):
    # The first 40 same and 40 different pairs of each fold: the full run is `faceedge eval lfw`
    # (figures in the README); this checks the protocol end to end on real photos.
    with open(os.path.join(facedata, "lfw-dev", "pairs.txt")) as f:
        lines = f.read().splitlines()
    folds, per_half = map(int, lines[0].split())
    body = lines[1:]
    subset = []
    for fold in range(folds):
        block = body[fold * 2 * per_half:(fold + 1) * 2 * per_half]
        subset += block[:40] + block[per_half:per_half + 40]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("{}\t40\n".format(folds) + "\n".join(subset) + "\n")
    code, out, err = faceedge("eval", "lfw", "--root", os.path.join(facedata, "lfw-dev", "images"),
                              "--pairs", str(pairs), "--model-dir", model_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["pairs"] == 80 * folds and report["folds"] == folds
    assert report["accuracy_mean"] >= 0.97
    assert report["roc_auc"] >= 0.99
    assert report["photos_without_face"] == []


def test_eval_detect_on_annotated_scenes(model_dir, facedata):
    code, out, err = faceedge("eval", "detect", "--xml", os.path.join(facedata, "scenes", "testing.xml"),
                              "--model-dir", model_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["faces"] > 10
    assert report["recall"] >= 0.9 and report["precision"] >= 0.9


def test_eval_lfw_missing_pairs_file_is_one_line_error(model_dir, tmp_path):
    code, _, err = faceedge("eval", "lfw", "--root", str(tmp_path), "--pairs", str(tmp_path / "nope.txt"),
                            "--model-dir", model_dir)
    assert code == 1 and "cannot read pairs file" in err


def test_bench_reports_every_stage(model_dir, facedata):
    code, out, err = faceedge("bench", "--json", "--repeat", "3", "--batch", "2", "--model-dir", model_dir,
                              "--image", os.path.join(facedata, "scenes", "two_people.jpg"))
    assert code == 0, err
    report = json.loads(out)
    assert report["backend"] == "onnxruntime" and report["embedding_dim"] == 128
    assert report["faces_in_frame"] == 2
    for stage in ("detect_640x480", "detect_250x250", "align", "embed_batch1", "embed_batch2",
                  "pipeline_640x480", "search_1k", "search_100k", "outbox_append"):
        assert report["stages"][stage]["median_ms"] > 0
        assert report["stages"][stage]["p95_ms"] >= report["stages"][stage]["median_ms"]
    assert report["machine"]["cores"] >= 1 and "onnxruntime" in report["versions"]


def test_bench_live_runs_the_daemon_and_reports_both_sides(model_dir):
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    code, out, err = faceedge("bench", "--live", "8", "--json", "--model-dir", model_dir, "--backend", "onnxruntime")
    assert code == 0, err
    report = json.loads(out)
    assert report["mode"] == "live" and report["backend"] == "onnxruntime"
    assert report["processed_frames"] > 0 and report["processed_fps"]["median"] > 0
    # The enrolled sample (Yao Ming) is named, the stranger beside him is not.
    assert "Yao Ming" in report["identities"] and "None" in report["identities"]
    assert report["subscriber_latency_ms"]["n"] > 0 and report["subscriber_latency_ms"]["median"] > 0
    for stage in ("detect", "align", "frame_total"):
        assert report["daemon_latency_ms"][stage]["n"] > 0
