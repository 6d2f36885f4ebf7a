"""`faceedge build-engines` / `engines list|inspect|clean` / `calibrate` through the real CLI."""
import io
import json
import os
import sys

import pytest

from edge.cli import main


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_build_engines_without_tensorrt_is_a_clear_error(tmp_path, capsys, model_dir):
    code, out, err = _run(["build-engines", "--model-dir", model_dir, "--engine-dir", str(tmp_path)], capsys)
    assert code == 1 and "TensorRT cannot be imported" in err and "onnxruntime" in err


@pytest.fixture
def fake_trt(monkeypatch):
    from tests.fakes import make_fakes
    trt, cuda, calls = make_fakes("8.2")
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    return calls   # preprocessing and verification: the real run-time detector and recognizer


def test_build_list_inspect_clean(tmp_path, capsys, model_dir, fake_trt):
    engines = str(tmp_path / "engines")
    code, out, err = _run(["build-engines", "--model-dir", model_dir, "--engine-dir", engines,
                           "--detector-size", "320", "--max-batch", "8", "--opt-batch", "4", "--no-progress"], capsys)
    assert code == 0, err
    assert "detector:" in out and "recognizer:" in out and "FP16" in out
    code, out, err = _run(["engines", "list", "--engine-dir", engines, "--json"], capsys)
    rows = json.loads(out)
    assert sorted(r["role"] for r in rows) == ["detector", "recognizer"]
    assert all(r["status"] == "verified" and r["tensorrt"] == "8.2.1.8" for r in rows)
    key = os.path.basename(rows[0]["engine"]).split(".")[-2]
    code, out, err = _run(["engines", "inspect", "--engine-dir", engines, key], capsys)
    meta = json.loads(out)
    assert meta["fingerprint"]["gpu_name"] == "Fake Xavier" and "build_seconds" in meta["build"]
    # a second build finds both engines by fingerprint
    n = fake_trt.count("builder.build_serialized_network")
    _run(["build-engines", "--model-dir", model_dir, "--engine-dir", engines, "--detector-size", "320",
          "--max-batch", "8", "--opt-batch", "4", "--no-progress"], capsys)
    assert fake_trt.count("builder.build_serialized_network") == n
    open(os.path.join(engines, ".tmp-99-x.engine"), "wb").close()
    code, out, err = _run(["engines", "clean", "--engine-dir", engines], capsys)
    assert ".tmp-99-x.engine" in out and not os.path.exists(os.path.join(engines, ".tmp-99-x.engine"))
    code, out, err = _run(["engines", "clean", "--engine-dir", engines, "--all"], capsys)
    assert not [n for n in os.listdir(engines) if n.endswith(".engine")]


def test_calibrate_collect_folder_and_show(tmp_path, capsys, facedata, model_dir):
    out_dir = str(tmp_path / "set")
    code, out, err = _run(["calibrate", "collect", "--folder", os.path.join(facedata, "known"),
                           "--out", out_dir, "--model-dir", model_dir], capsys)
    assert code == 0, err
    assert "detector frames" in out
    manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
    assert manifest["recognizer"] and all(r["from"] == "frame" for r in manifest["recognizer"])
    code, out, err = _run(["calibrate", "show", out_dir], capsys)
    assert code == 0 and "sha256:" in out and "needs >= 32" in out


def test_progress_lines_without_a_tty():
    from engine_builder.progress import BuildProgress
    stream = io.StringIO()
    import time
    with BuildProgress("sface FP16", stream=stream, interval=0.05):
        time.sleep(0.2)
    text = stream.getvalue()
    assert "sface FP16: building 0:00" in text and text.rstrip().endswith("done after 0:00")


def test_ctrl_c_cancels_the_build_and_restores_the_handler():
    import signal
    from engine_builder.progress import BuildProgress
    before = signal.getsignal(signal.SIGINT)
    progress = BuildProgress("x", stream=io.StringIO(), enabled=False)
    with pytest.raises(KeyboardInterrupt):
        with progress:
            os.kill(os.getpid(), signal.SIGINT)
            import time
            time.sleep(1)
    assert progress.cancelled
    assert signal.getsignal(signal.SIGINT) is before


def _fake_tensorrt_generation(monkeypatch, gen):
    from tests.fakes import make_fakes
    trt, cuda, calls = make_fakes(gen)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr(sys.modules["pycuda"], "driver", cuda)
    return calls


def test_build_engines_precision_force_calibration_and_clean_after_upgrade(tmp_path, capsys, caplog, model_dir,
                                                                           facedata, fake_trt, monkeypatch):
    engines = str(tmp_path / "engines")
    base = ["build-engines", "--model-dir", model_dir, "--engine-dir", engines, "--detector-size", "160",
            "--max-batch", "4", "--opt-batch", "2", "--no-progress"]
    code, out, err = _run(base + ["--precision", "fp32"], capsys)
    assert code == 0, err
    assert out.count("FP32") == 2 and "FP16" not in out
    n = fake_trt.count("builder.build_serialized_network")
    code, out, err = _run(base + ["--precision", "fp32", "--force"], capsys)
    assert code == 0 and fake_trt.count("builder.build_serialized_network") == n + 2
    assert len([f for f in os.listdir(engines) if f.endswith(".engine")]) == 2    # replaced, not added
    small = str(tmp_path / "small-set")
    code, out, err = _run(["calibrate", "collect", "--folder", os.path.join(facedata, "known"), "--out", small,
                           "--model-dir", model_dir], capsys)
    assert code == 0, err
    code, out, err = _run(base + ["--precision", "int8", "--calibration", small], capsys)
    assert code == 1 and "INT8 needs at least" in err and "calibrate collect" in err
    code, out, err = _run(base + ["--calibration", small], capsys)      # auto: too small -> FP16, said so
    assert code == 0 and out.count("FP16") == 2 and "using FP16" in caplog.text
    code, out, err = _run(["engines", "list", "--engine-dir", engines], capsys)
    assert out.count("verified") == 4 and "TRT 8.2.1.8" in out
    # JetPack upgrade: TensorRT 10 here now; the 8.2 engines can never load again
    _fake_tensorrt_generation(monkeypatch, "10")
    code, out, err = _run(["engines", "clean", "--engine-dir", engines, "--dry-run"], capsys)
    assert out.count("would remove") == 8 and len(os.listdir(engines)) >= 8
    code, out, err = _run(["engines", "clean", "--engine-dir", engines], capsys)
    assert not [f for f in os.listdir(engines) if f.endswith((".engine", ".json"))]


def test_calibrate_collect_from_a_named_camera_and_the_gallery(tmp_path, capsys, facedata, model_dir):
    import cv2
    from edge.gallery import open_gallery
    from edge.gallery.enrollment import sample_from_image
    from edge.models.manifest import model_fingerprint, resolve_profile
    from edge.pipeline import open_pipeline
    from tests.media import known, photo_video
    video = photo_video(str(tmp_path / "door.avi"), [known(facedata, "obama.jpg"), known(facedata, "biden.jpg")],
                        seconds=1.5, fps=10.0)
    pipeline = open_pipeline("default", model_dir, "onnxruntime")
    gallery_path = str(tmp_path / "gallery.db")
    with open_gallery(gallery_path) as gallery:
        gallery.enroll("lin", [sample_from_image(pipeline, cv2.imread(known(facedata, "lin-manuel-miranda.png")),
                                                 "lin.png")],
                       model_fingerprint(resolve_profile("default", model_dir).recognizer_path))
    config = tmp_path / "faceedge.toml"
    config.write_text('[gallery]\npath = "{}"\n\n[[cameras]]\nname = "door"\nsource = "{}"\nroi = [0, 0, 480, 480]\n'
                      .format(gallery_path, video))
    out_dir = str(tmp_path / "set")
    code, out, err = _run(["calibrate", "collect", "--camera", "garage", "--config", str(config), "--out", out_dir,
                           "--model-dir", model_dir], capsys)
    assert code == 1 and "no camera named 'garage'" in err and "door" in err
    code, out, err = _run(["calibrate", "collect", "--camera", "door", "--config", str(config), "--out", out_dir,
                           "--frames", "20", "--interval", "0.25", "--model-dir", model_dir], capsys)
    assert code == 0, err
    manifest = json.load(open(os.path.join(out_dir, "manifest.json")))
    assert manifest["sources"][0].startswith("camera:door") and manifest["sources"][1].startswith("gallery:")
    origins = [r["from"] for r in manifest["recognizer"]]
    assert origins.count("gallery") == 1 and origins.count("frame") >= 2
    assert 2 <= len(manifest["detector"]) < manifest["frames_seen"] <= 20     # near-copies of a still scene dropped
    frame = cv2.imread(os.path.join(out_dir, manifest["detector"][0]["file"]))
    assert frame.shape == (480, 480, 3)                                        # the camera's ROI, as the daemon sees it


def test_build_engines_with_the_daemon_config_builds_what_the_daemon_looks_up(tmp_path, capsys, model_dir,
                                                                              fake_trt):
    from edge.commands.daemon import open_pipeline_for
    from edge.daemon.config import load_config
    from edge.errors import BackendError
    engines = str(tmp_path / "engines")
    config = tmp_path / "faceedge.toml"
    config.write_text('[models]\ndir = "{}"\n\n[engines]\ndir = "{}"\nbuild_on_start = false\nmax_batch = 4\n\n'
                      '[recognition]\ndet_size = 320\n'.format(model_dir, engines))
    with pytest.raises(BackendError, match="build-engines --config"):      # nothing built yet: the daemon says what to run
        open_pipeline_for(load_config(str(config)))
    code, out, err = _run(["build-engines", "--config", str(config), "--no-progress"], capsys)
    assert code == 0, err
    rows = json.loads(_run(["engines", "list", "--engine-dir", engines, "--json"], capsys)[1])
    profiles = dict((r["role"], r["profile"]) for r in rows)
    assert profiles["recognizer"] == [[1, 3, 112, 112], [4, 3, 112, 112], [4, 3, 112, 112]]
    assert profiles["detector"] == [[1, 3, 32, 32], [1, 3, 320, 320], [1, 3, 320, 320]]
    n = fake_trt.count("builder.build_serialized_network")
    pipeline = open_pipeline_for(load_config(str(config)))              # build_on_start = false: found, not built
    assert pipeline.detector.backend.name == pipeline.recognizer.backend.name == "tensorrt"
    assert fake_trt.count("builder.build_serialized_network") == n


def test_int8_without_a_calibration_set_is_one_clear_line(tmp_path, capsys, model_dir, fake_trt):
    """From the daemon's [engines] precision = "int8", and from --precision int8: no traceback, no build."""
    engines = str(tmp_path / "engines")
    config = tmp_path / "faceedge.toml"
    config.write_text('[models]\ndir = "{}"\n\n[engines]\ndir = "{}"\nprecision = "int8"\n'.format(model_dir, engines))
    for argv in (["build-engines", "--config", str(config), "--no-progress"],
                 ["build-engines", "--model-dir", model_dir, "--engine-dir", engines, "--precision", "int8",
                  "--no-progress"]):
        code, out, err = _run(argv, capsys)
        errors = [line for line in err.splitlines() if line.startswith("faceedge: error:")]
        assert code == 1 and "Traceback" not in err and len(errors) == 1, err
        assert "INT8 needs a calibration set" in errors[0] and "faceedge calibrate collect" in errors[0]
        assert "--calibration DIR" in errors[0] and "engines.calibration_dir" in errors[0]
    assert "builder.build_serialized_network" not in fake_trt
