"""Inference faults: a hung backend (the watchdog goes quiet), damaged model and engine files."""
import logging
import os
import subprocess
import sys
import time

import pytest

from edge.errors import BackendError
from edge.backends.cuda import PycudaAllocator
from edge.engines import EngineManager, EngineRequest, engine_options
from tests.broker import Broker
from tests.faults import Daemon, record_figure
from tests.fakes import make_fakes
from tests.fakes.models import TinyModels, tiny_recognizer
from tests.media import known, photo_video
from tests.support import REPO
from tests.support.daemon import write_config


def test_hung_inference_stops_the_watchdog(tmp_path, facedata, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, fps=10.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}])
    hang = str(tmp_path / "hang")
    daemon = Daemon(config, module="tests.fault_daemon", env={"FACEEDGE_FAULT_HANG": hang}).start()
    try:
        ready = daemon.wait_notify("READY=1")
        daemon.wait_notify("WATCHDOG=1", after=ready)
        open(hang, "w").close()              # from now on every inference call blocks
        hung = time.monotonic()
        time.sleep(2 * daemon.watchdog_s + 1.0)
        quiet_from = time.monotonic()
        time.sleep(5.0)
        quiet_to = time.monotonic()
        assert daemon.alive()
        last_fed = max(daemon.watchdogs(0, quiet_to))
        os.unlink(hang)
        released = time.monotonic()
        resumed = daemon.wait_notify("WATCHDOG=1", after=released, limit=30)
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        broker.stop()
    # systemd (WatchdogSec) would have killed and restarted the service here
    assert daemon.watchdogs(quiet_from, quiet_to) == []
    assert "not feeding the watchdog" in daemon.log()
    record_figure("hung_inference", watchdog_silent_after_s=round(last_fed - hung, 1),
                  watchdog_back_after_release_s=round(resumed - released, 1))


def _run_daemon(config):
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode("utf-8", "replace")


def _models_with(model_dir, tmp_path, name, damage):
    """A model dir of links to the fetched models, with `name` replaced by a damaged copy."""
    target = tmp_path / "models"
    target.mkdir()
    for entry in os.listdir(model_dir):
        if entry != name and not entry.startswith("."):
            os.symlink(os.path.join(model_dir, entry), str(target / entry))
    with open(os.path.join(model_dir, name), "rb") as f:
        data = f.read()
    with open(str(target / name), "wb") as f:
        f.write(damage(data))
    return str(target), str(target / name)


@pytest.mark.parametrize("name,damage", [
    ("retinaface_mnet025.onnx", lambda data: data[:len(data) // 2]),                       # truncated
    ("sface_2021dec_fp32.onnx", lambda data: data[:4096] + b"\0" * 64 + data[4160:]),     # corrupted
])
def test_damaged_profile_model_is_refused_naming_file_and_fetch_command(tmp_path, model_dir, name, damage):
    models, path = _models_with(model_dir, tmp_path, name, damage)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, models, str(tmp_path / "g.db"), 1, [])
    start = time.monotonic()
    code, err = _run_daemon(config)
    lines = [l for l in err.splitlines() if "error" in l]
    assert code == 1 and len(lines) == 1, err
    assert path in lines[0] and "sha256" in lines[0]
    assert "faceedge models fetch --profile default --dir {}".format(models) in lines[0]
    record_figure("damaged_model", file=name, refused_after_s=round(time.monotonic() - start, 1))


def test_truncated_own_model_is_refused_naming_the_file(tmp_path, model_dir):
    with open(os.path.join(model_dir, "retinaface_mnet025.onnx"), "rb") as f:
        data = f.read()
    own = str(tmp_path / "my-detector.onnx")
    with open(own, "wb") as f:
        f.write(data[:len(data) // 3])
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"), 1, [],
                          extra={"models": {"detector_family": "retinaface", "detector_path": own}})
    code, err = _run_daemon(config)
    lines = [l for l in err.splitlines() if "error" in l]
    assert code == 1 and len(lines) == 1, err
    assert "cannot load model {}".format(own) in lines[0] and "faceedge models fetch" in lines[0]


def _manager(tmp_path, build_on_start):
    trt, cuda, _ = make_fakes("10")
    return EngineManager(engine_options(engine_dir=str(tmp_path / "engines"), progress=False,
                                        build_on_start=build_on_start),
                         trt=trt, allocator=PycudaAllocator(cuda=cuda), models=TinyModels())


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_engine_is_rebuilt_or_refused_naming_file_and_command(tmp_path, caplog, damage):
    request = EngineRequest("recognizer", "sface", tiny_recognizer(str(tmp_path / "r.onnx")))
    entry = _manager(tmp_path, True).ensure(request)
    with open(entry.engine_path, "rb") as f:
        good = f.read()
    with open(entry.engine_path, "wb") as f:
        f.write(good[:len(good) // 2] if damage == "truncate" else b"\x00" * len(good))
    with pytest.raises(BackendError) as refused:
        _manager(tmp_path, False).open_backend(request)
    assert entry.engine_path in str(refused.value) and "faceedge build-engines --force" in str(refused.value)
    # with build_on_start (the default) it is rebuilt instead, with a warning naming it
    with caplog.at_level(logging.WARNING):
        backend = _manager(tmp_path, True).open_backend(request)
    assert backend.name == "tensorrt"
    assert any(entry.engine_path in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
