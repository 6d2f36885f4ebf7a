"""Fingerprints, metadata round trips, cache decisions, platform detection: all real, no TensorRT."""
import json
import os

import pytest

from engine_builder import fingerprint as fpmod
from engine_builder import platform as platmod
from engine_builder.cache import EngineCache, write_atomic


def _fp(**changes):
    fp = fpmod.EngineFingerprint(
        role="recognizer", model_sha256="ab" * 32, precision="fp16", input_name="data",
        profile=((1, 3, 112, 112), (8, 3, 112, 112), (32, 3, 112, 112)), calibration_sha256="",
        tensorrt="8.2.1.8", cuda="10.2", l4t="32.7.4", gpu_name="NVIDIA Tegra X1", compute_capability="5.3",
        dla_core=-1, builder={"workspace_mb": 512, "calibration_batch": 0})
    return fp._replace(**changes)


def _verified(cache, fp, stem, data):
    return cache.promote(cache.set_status(cache.store(fp, stem, data, {}), "verified"))


def test_fingerprint_round_trip_through_json():
    fp = _fp()
    back = fpmod.from_dict(json.loads(json.dumps(fpmod.to_dict(fp))))
    assert back == fp
    assert fpmod.key(back) == fpmod.key(fp)


@pytest.mark.parametrize("field,value", [
    ("tensorrt", "8.5.2.2"), ("l4t", "35.4.1"), ("gpu_name", "Xavier"), ("compute_capability", "7.2"),
    ("cuda", "11.4"), ("model_sha256", "cd" * 32), ("precision", "int8"), ("calibration_sha256", "ee" * 32),
    ("profile", ((1, 3, 112, 112), (4, 3, 112, 112), (16, 3, 112, 112))), ("dla_core", 0)])
def test_every_field_changes_the_key(field, value):
    changed = _fp(**{field: value})
    assert fpmod.key(changed) != fpmod.key(_fp())
    assert fpmod.differences(_fp(), changed) == [field]


def test_platform_differences_only_name_machine_fields():
    assert fpmod.platform_differences(_fp(), _fp(tensorrt="10.3.0", precision="int8")) == ["tensorrt"]


def test_store_find_verify_and_status(tmp_path):
    cache = EngineCache(str(tmp_path / "engines"))
    entry = cache.store(_fp(), "sface", b"PLAN", {"build_seconds": 1.0})
    assert cache.find(_fp()) is None          # unverified engines are not used
    entry = cache.set_status(entry, "verified", {"mean_cosine": 0.999}, "ok")
    found = cache.find(_fp())
    assert found is not None and found.metadata["verification"]["mean_cosine"] == 0.999
    assert cache.find(_fp(tensorrt="10.3.0")) is None
    with open(found.engine_path, "rb") as f:
        assert f.read() == b"PLAN"
    meta = json.load(open(found.metadata_path))
    for key in ("fingerprint", "build", "verification", "status", "model"):
        assert key in meta


def test_metadata_without_engine_file_is_no_engine(tmp_path):
    cache = EngineCache(str(tmp_path))
    entry = cache.set_status(cache.store(_fp(), "m", b"P", {}), "verified")
    os.unlink(entry.engine_path)
    assert cache.find(_fp()) is None
    assert entry.metadata_path in [e.metadata_path for e in cache.stale()]


def test_retire_superseded_keeps_other_models_and_precisions(tmp_path):
    cache = EngineCache(str(tmp_path))
    old = _verified(cache, _fp(), "sface", b"old")
    other_precision = _verified(cache, _fp(precision="fp32"), "sface", b"fp32")
    other_model = _verified(cache, _fp(tensorrt="8.5.2.2"), "w600k", b"x")
    new = _verified(cache, _fp(tensorrt="8.5.2.2"), "sface", b"new")
    removed = cache.retire_superseded(new)
    assert sorted(e.metadata_path for e in removed) == sorted([old.metadata_path, other_precision.metadata_path])
    left = [e.metadata_path for e in cache.entries()]
    assert new.metadata_path in left and other_model.metadata_path in left


def test_stale_against_current_platform(tmp_path):
    cache = EngineCache(str(tmp_path))
    a = _verified(cache, _fp(), "sface", b"a")
    b = cache.promote(cache.set_status(cache.store(_fp(precision="fp32"), "sface", b"b", {}), "rejected"))
    assert [e.metadata_path for e in cache.stale()] == [b.metadata_path]
    stale = cache.stale(_fp(tensorrt="10.3.0"))
    assert sorted(e.metadata_path for e in stale) == sorted([a.metadata_path, b.metadata_path])


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = str(tmp_path / "x.engine")

    def boom(fd):
        raise KeyboardInterrupt()
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"half")
    assert os.listdir(str(tmp_path)) == []


def test_orphans_are_temp_files_and_engines_without_metadata(tmp_path):
    (tmp_path / ".tmp-123-a.engine").write_bytes(b"x")
    (tmp_path / "b.fp16.0000.engine").write_bytes(b"x")
    cache = EngineCache(str(tmp_path))
    assert [os.path.basename(p) for p in cache.orphans()] == [".tmp-123-a.engine", "b.fp16.0000.engine"]


@pytest.mark.parametrize("text,l4t,jp", [
    ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64", "32.7.4", "4.6"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "35.4.1", "5.1"),
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic", "36.4.0", "6.x"),
    ("garbage", "", ""),
])
def test_l4t_release_parsing(tmp_path, text, l4t, jp):
    release = tmp_path / "nv_tegra_release"
    release.write_text(text)
    found = platmod.read_l4t(str(release))
    if l4t:
        assert found == l4t
    assert platmod.jetpack_for_l4t(l4t) == jp


@pytest.mark.parametrize("cc,fast", [("5.3", False), ("6.2", False), ("7.2", True), ("8.7", True), ("6.1", True), ("", False)])
def test_fast_int8_by_compute_capability(cc, fast):
    assert platmod.has_fast_int8(cc) is fast


def test_detect_off_jetson_without_gpu(tmp_path):
    info = platmod.detect(None, None, release_file=str(tmp_path / "none"), model_file=str(tmp_path / "none"))
    assert info.tensorrt == "" and info.gpu_name == "" and not info.fast_int8


def test_a_new_build_is_a_candidate_until_promoted(tmp_path):
    cache = EngineCache(str(tmp_path))
    old = _verified(cache, _fp(), "sface", b"OLD")
    assert old.engine_path.endswith(".engine") and ".new." not in old.engine_path
    new = cache.store(_fp(), "sface", b"NEW!", {})               # same fingerprint: --force
    assert new.engine_path.endswith(".new.engine")
    assert cache.find(_fp()).engine_path == old.engine_path
    with open(old.engine_path, "rb") as f:
        assert f.read() == b"OLD"
    assert [e.metadata_path for e in cache.stale()] == [new.metadata_path]   # a killed build's leftover
    promoted = cache.promote(cache.set_status(new, "verified"))
    assert promoted.engine_path == old.engine_path and not os.path.exists(new.engine_path)
    with open(old.engine_path, "rb") as f:
        assert f.read() == b"NEW!"
    assert [e.metadata_path for e in cache.entries()] == [old.metadata_path]
