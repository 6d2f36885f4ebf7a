"""`faceedge demo` end to end: fetched models and sample photos, real mosquitto, generated video."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_names_the_enrolled_face_and_the_stranger(tmp_path, model_dir):
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.skip("mosquitto not installed")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "demo", "--dir", str(tmp_path / "demo"),
                             "--model-dir", model_dir, "--backend", "onnxruntime"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    out = out.decode()
    assert proc.returncode == 0, out + err.decode()[-3000:]
    lines = out.splitlines()
    assert any(line.startswith("new") for line in lines)
    assert any("Yao Ming" in line for line in lines if line.startswith(("new", "update")))
    assert any("unknown" in line for line in lines if line.startswith(("new", "update", "end")))
    summary = [line for line in lines if line.startswith("summary:")]
    assert summary and "Yao Ming" in summary[0] and "unknown" in summary[0]
    assert any(line.startswith("processed") and "fps" in line and "p95" in line for line in lines)
