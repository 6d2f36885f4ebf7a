"""Calibration sets on real photos: collection, diversity, manifest/hash, batching, parity."""
import json
import os

import numpy as np
import pytest

from calibration import dataset
from calibration.collect import DiversityFilter, collect, folder_images
from calibration.dataset import CalibrationError


@pytest.fixture(scope="module")
def photos(facedata):
    images = list(folder_images(os.path.join(facedata, "known")))
    images += list(folder_images(os.path.join(facedata, "gray", "subject01")))[:6]
    assert len(images) >= 12
    return images


def _crops(images, n):
    import cv2
    out = []
    for i in range(n):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        s = min(h, w) * (0.5 + 0.04 * (i % 10))
        x0, y0 = int((w - s) * ((i * 7) % 10) / 10.0), int((h - s) * ((i * 3) % 10) / 10.0)
        out.append(cv2.resize(img[y0:y0 + int(s), x0:x0 + int(s)], (112, 112)))
    return out


def test_diversity_filter_drops_copies_keeps_different_photos(photos):
    f = DiversityFilter()
    assert sum(f.accept(photos[0]) for _ in range(500)) == 1
    darker = (photos[0].astype(np.float32) * 0.6).astype(np.uint8)
    assert not f.accept(darker)                      # a brightness change is not a new scene
    kept = DiversityFilter()
    assert sum(kept.accept(p) for p in photos) >= len(photos) // 2


def test_collect_writes_an_inspectable_set(tmp_path, photos):
    out = str(tmp_path / "set")
    manifest = collect(out, photos * 30, extra_crops=_crops(photos, 120), sources=["folder:known"])
    assert manifest["frames_seen"] == len(photos) * 30
    assert len(manifest["detector"]) < len(photos) + 1          # copies filtered
    on_disk = json.load(open(os.path.join(out, "manifest.json")))
    assert on_disk["sha256"] == manifest["sha256"] == dataset.set_hash(on_disk)
    cset = dataset.load(out)
    assert cset.sha256 == manifest["sha256"]
    assert all(os.path.isfile(p) for p in cset.files["detector"] + cset.files["recognizer"])
    # copying the directory elsewhere keeps the hash (a set moves between devices)
    import shutil
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    assert dataset.load(copy).sha256 == cset.sha256


def test_tampered_or_missing_files_are_reported(tmp_path, photos):
    out = str(tmp_path / "set")
    collect(out, photos)
    cset = dataset.load(out)
    victim = cset.files["detector"][0]
    with open(victim, "ab") as f:
        f.write(b"x")
    with pytest.raises(CalibrationError, match="changed since"):
        dataset.load(out)
    os.unlink(victim)
    with pytest.raises(CalibrationError, match="missing"):
        dataset.load(out)


def test_not_a_set_and_non_empty_output(tmp_path, photos):
    with pytest.raises(CalibrationError, match="calibrate collect"):
        dataset.load(str(tmp_path))
    (tmp_path / "junk").write_text("x")
    with pytest.raises(CalibrationError, match="not empty"):
        collect(str(tmp_path), photos)


def test_empty_and_too_small_sets_are_clear_errors(tmp_path, photos):
    out = str(tmp_path / "set")
    collect(out, photos[:3])
    cset = dataset.load(out)
    with pytest.raises(CalibrationError, match="no recognizer samples"):
        dataset.require(cset, "recognizer")
    with pytest.raises(CalibrationError, match="needs at least 32"):
        dataset.require(cset, "detector")


def test_split_holds_out_every_tenth():
    calib, held = dataset.split(list(range(25)))
    assert held == [9, 19] and len(calib) == 23 and not set(calib) & set(held)


def test_batches_are_full_and_use_the_given_preprocessing(tmp_path, photos):
    out = str(tmp_path / "set")
    crops = _crops(photos, 70)
    collect(out, photos, extra_crops=crops)
    cset = dataset.load(out)
    paths = dataset.require(cset, "recognizer", minimum=8)
    seen = []

    def preprocess(batch):
        seen.append(len(batch))
        return np.stack([c.transpose(2, 0, 1) for c in batch]).astype(np.float32)
    batches = list(dataset.recognizer_batches(paths, preprocess, 8))
    assert all(b.shape == (8, 3, 112, 112) and b.dtype == np.float32 for b in batches)
    assert len(batches) == len(paths) // 8 and seen == [8] * len(batches)
    # crops are stored losslessly (PNG): calibration sees the very pixels run time would
    stored = [dataset.read_image(p) for p in cset.files["recognizer"][:5]]
    kept_from = [c for c in crops if any(np.array_equal(c, s) for s in stored)]
    assert len(kept_from) == 5

    def det_pre(image):
        import cv2
        return cv2.resize(image, (64, 48)).transpose(2, 0, 1)[None].astype(np.float32), None
    det = list(dataset.detector_batches(cset.files["detector"], det_pre, 2))
    assert det and all(b.shape == (2, 3, 48, 64) for b in det)


def test_runtime_preprocessing_parity(tmp_path, photos, model_dir):
    """The calibrator is fed by the run-time Recognizer.preprocess (same function, same output)."""
    from edge import recognizers
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edge.models.manifest import resolve_profile
    from edge.engines import RunTimeModels
    models = resolve_profile("default", model_dir)
    backend = OnnxRuntimeBackend(models.recognizer_path)
    out = str(tmp_path / "set")
    collect(out, photos, extra_crops=_crops(photos, 40))
    cset = dataset.load(out)
    paths = cset.files["recognizer"][:16]
    recognizer = recognizers.create_recognizer(models.recognizer_family, backend)
    fed = np.concatenate(list(dataset.recognizer_batches(
        paths, RunTimeModels().recognizer_preprocess(models.recognizer_family, backend), 8)))
    runtime = recognizer.preprocess([dataset.read_image(p) for p in paths])
    np.testing.assert_array_equal(fed, runtime)


def test_detector_calibration_batches_are_what_the_run_time_detector_feeds(tmp_path, photos, model_dir):
    """Frames the size of the engine's opt shape: the calibrator sees exactly the pipeline's detector input."""
    import cv2
    from edge.pipeline import open_pipeline
    from edge.engines import RunTimeModels
    pipeline = open_pipeline("default", model_dir, "onnxruntime", det_size=320)
    frames = [cv2.resize(p, (320, 320)) for p in photos]
    out = str(tmp_path / "set")
    collect(out, frames)
    paths = dataset.load(out).files["detector"]
    assert len(paths) >= 4
    family = pipeline.detector.family
    calib = RunTimeModels().detector(family, pipeline.detector.backend, (320, 320))
    fed = np.concatenate(list(dataset.detector_batches(paths, calib.preprocess, 1)))
    runtime = np.concatenate([pipeline.detector.preprocess(dataset.read_image(p))[0] for p in paths])
    assert fed.shape == (len(paths), 3, 320, 320)
    np.testing.assert_array_equal(fed, runtime)


def test_camera_frames_from_a_video_file(tmp_path, facedata):
    import time
    import cv2
    from calibration.collect import camera_frames
    from tests.media import known, photo_video
    video = photo_video(str(tmp_path / "cam.avi"), [known(facedata, "obama.jpg"), known(facedata, "biden.jpg"),
                                                     known(facedata, "alex-lacamoire.png")], seconds=1.0, fps=10.0)
    started = time.monotonic()
    frames = list(camera_frames(cv2.VideoCapture(video), 100, interval=0.5, roi=(100, 50, 420, 290), is_file=True))
    assert time.monotonic() - started < 10.0             # the end of a file is not a 30 s camera timeout
    assert 5 <= len(frames) <= 7                           # 3 s of video, one frame per 0.5 s of its time
    assert all(f.shape == (240, 320, 3) for f in frames)
    assert len(list(camera_frames(cv2.VideoCapture(video), 2, interval=0.0, is_file=True))) == 2


def test_camera_that_stops_delivering_is_a_clear_error():
    from calibration.collect import camera_frames

    class Silent(object):
        released = False

        def read(self):
            return False, None

        def isOpened(self):
            return True

        def get(self, prop):
            return 0.0

        def release(self):
            self.released = True
    cap = Silent()
    with pytest.raises(CalibrationError, match="delivered no frame for 0 s"):
        list(camera_frames(cap, 5, timeout=0.2, name="door"))
    assert cap.released
