"""ONNX Runtime's optimised graph kept on disk (edge/backends/ort_cache.py): the second session
comes from the cache and embeds real faces exactly as a fresh one; a changed model, a damaged
cache file, a cache that cannot be written and `off` all still give a working, correct session."""
import os
import shutil

import numpy as np
import pytest

from edge.backends import ort_cache
from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge.recognizers import create_recognizer
from tests.media import known

SFACE = "sface_2021dec_fp32.onnx"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    directory = tmp_path / "ortc"
    monkeypatch.setenv("FACEEDGE_ORT_CACHE", str(directory))
    return directory


@pytest.fixture(scope="module")
def crops(pipeline, facedata):
    from edge.imageio import read_image
    out = []
    for name in ("obama.jpg", "biden.jpg"):
        out.extend(f.crop for f in pipeline.locate(read_image(known(facedata, name)), min_quality=0.0)[0])
    assert len(out) >= 2
    return out


def embed(backend, crops):
    return create_recognizer("sface", backend).embed(crops)


def reference(model, crops, monkeypatch):
    monkeypatch.setenv("FACEEDGE_ORT_CACHE", "off")
    backend = OnnxRuntimeBackend(model, threads=1)
    assert not backend.from_cache
    return embed(backend, crops)


def cached_files(directory):
    return sorted(n for n in os.listdir(str(directory)) if n.endswith(ort_cache.SUFFIX)) \
        if directory.exists() else []


def test_second_session_comes_from_the_cache_and_embeds_the_same(model_dir, crops, cache, monkeypatch):
    model = os.path.join(model_dir, SFACE)
    first = OnnxRuntimeBackend(model, threads=1)
    assert not first.from_cache
    assert len(cached_files(cache)) == 1 and oct(os.stat(str(cache)).st_mode & 0o777) == "0o700"
    assert not [n for n in os.listdir(str(cache)) if n.startswith(".tmp-")]
    second = OnnxRuntimeBackend(model, threads=1)
    assert second.from_cache
    got_first, got_second = embed(first, crops), embed(second, crops)
    want = reference(model, crops, monkeypatch)
    assert np.array_equal(got_second, got_first)
    assert np.allclose(got_second, want, atol=1e-5)


def test_a_changed_model_is_not_served_from_the_old_graph(tmp_path, model_dir, crops, cache, monkeypatch):
    model = str(tmp_path / SFACE)
    shutil.copy(os.path.join(model_dir, SFACE), model)
    OnnxRuntimeBackend(model, threads=1)
    # Another model under the same name and path: the detector's file.
    shutil.copy(os.path.join(model_dir, "retinaface_mnet025.onnx"), model)
    other = OnnxRuntimeBackend(model, threads=1)
    assert not other.from_cache and len(cached_files(cache)) == 2
    detector = OnnxRuntimeBackend(os.path.join(model_dir, "retinaface_mnet025.onnx"), threads=1)
    assert other.output_names == detector.output_names and len(other.output_names) == 3   # SFace has one


def test_a_damaged_cache_file_is_built_again(model_dir, crops, cache, monkeypatch):
    model = os.path.join(model_dir, SFACE)
    OnnxRuntimeBackend(model, threads=1)
    path = str(cache / cached_files(cache)[0])
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)
    rebuilt = OnnxRuntimeBackend(model, threads=1)
    assert not rebuilt.from_cache
    again = OnnxRuntimeBackend(model, threads=1)
    assert again.from_cache
    assert np.allclose(embed(again, crops), reference(model, crops, monkeypatch), atol=1e-5)


def test_no_cache_when_it_cannot_be_written_or_is_off(tmp_path, model_dir, crops, monkeypatch):
    model = os.path.join(model_dir, SFACE)
    blocker = tmp_path / "a-file"
    blocker.write_text(u"not a directory")
    monkeypatch.setenv("FACEEDGE_ORT_CACHE", str(blocker / "ortc"))
    backend = OnnxRuntimeBackend(model, threads=1)
    assert not backend.from_cache
    assert np.allclose(embed(backend, crops), reference(model, crops, monkeypatch), atol=1e-5)
    monkeypatch.setenv("FACEEDGE_ORT_CACHE", "off")
    assert ort_cache.cached_path(model, "1.0") is None


def test_the_key_names_the_cpu_and_the_runtime(model_dir, cache):
    model = os.path.join(model_dir, SFACE)
    assert ort_cache.cached_path(model, "1.10.0") != ort_cache.cached_path(model, "1.32.0")
    assert "flags" in ort_cache.cpu_signature() or "Features" in ort_cache.cpu_signature()
