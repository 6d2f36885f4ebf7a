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
    from tests.fakes.models import TinyModels
    trt, cuda, calls = make_fakes("8.2")
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    # Stand-in preprocessing for verification until edge.detectors/recognizers exist.
    monkeypatch.setattr("engine_builder.manager.RunTimeModels", TinyModels)
    return calls


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
