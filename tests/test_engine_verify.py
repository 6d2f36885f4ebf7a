"""Verification maths, and the real pinned models through the (fake) builder and real ONNX Runtime."""
import numpy as np
import pytest

from edge.types import Detection
from engine_builder import verify
from engine_builder.shapes import infer_role, onnx_input, plan_profile


def test_cosines_and_bounds():
    rng = np.random.RandomState(0)
    a = rng.standard_normal((20, 128))
    fig = verify.embedding_agreement(a, a * 3.0)
    assert fig["mean_cosine"] == pytest.approx(1.0) and fig["samples"] == 20
    noisy = verify.embedding_agreement(a, a + 0.3 * rng.standard_normal(a.shape))
    assert 0.9 < noisy["mean_cosine"] < 0.99
    assert verify.judge("recognizer", "int8", {"mean_cosine": 0.985})[0]
    assert not verify.judge("recognizer", "fp16", {"mean_cosine": 0.985})[0]
    ok, reason = verify.judge("recognizer", "fp16", {"mean_cosine": 0.95})
    assert not ok and "0.9500 < 0.9900" in reason
    with pytest.raises(ValueError):
        verify.embedding_agreement(a[:0], a[:0])


def _det(x, y, s, lm_shift=0.0):
    lm = np.array([[x + 0.3 * s, y + 0.4 * s], [x + 0.7 * s, y + 0.4 * s], [x + 0.5 * s, y + 0.6 * s],
                   [x + 0.35 * s, y + 0.8 * s], [x + 0.65 * s, y + 0.8 * s]], np.float32) + lm_shift
    return Detection((x, y, x + s, y + s), 0.9, lm)


def test_detection_agreement():
    ref = [[_det(10, 10, 100), _det(300, 50, 60)], []]
    same = verify.detection_agreement(ref, ref)
    assert same == {"images": 2, "reference_faces": 2, "engine_faces": 2, "recall": 1.0,
                    "mean_iou": 1.0, "landmark_error": 0.0}
    # box moved 2 px right, landmarks 2 px more on each axis: landmark offset (4, 2)
    shifted = verify.detection_agreement(ref, [[_det(12, 10, 100, lm_shift=2.0)], []])
    assert shifted["recall"] == 0.5
    assert shifted["mean_iou"] == pytest.approx(98 * 100 / (2 * 100 * 100 - 98 * 100))
    assert shifted["landmark_error"] == pytest.approx(np.hypot(4, 2) / np.hypot(100, 100), rel=1e-4)
    ok, reason = verify.judge("detector", "fp16", shifted)
    assert not ok and "recall 0.500" in reason
    assert verify.judge("detector", "fp16", same)[0]
    assert verify.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_real_models_shapes_and_profiles(model_dir):
    from edge.models.manifest import resolve_profile
    for profile in ("default", "arcface-mbf"):
        m = resolve_profile(profile, model_dir)
        rec, det = onnx_input(m.recognizer_path), onnx_input(m.detector_path)
        assert infer_role(rec) == "recognizer" and infer_role(det) == "detector"
        assert plan_profile("recognizer", rec, 8, 32) == ((1, 3, 112, 112), (8, 3, 112, 112), (32, 3, 112, 112))
        assert plan_profile("detector", det, detector_size=(480, 480), detector_fixed=True) == ((1, 3, 480, 480),) * 3
        assert plan_profile("detector", det, detector_size=(480, 640)) == (
            (1, 3, 32, 32), (1, 3, 480, 640), (1, 3, 480, 640))
        assert plan_profile("detector", det, detector_size=(640, 640)) == (
            (1, 3, 32, 32), (1, 3, 640, 640), (1, 3, 640, 640))


@pytest.mark.parametrize("gen", ["8.2", "10"])
def test_real_sface_through_fake_builder_matches_onnxruntime(tmp_path, model_dir, gen):
    """Real SFace ONNX: parse, profile, buffers, outputs vs ONNX Runtime (fake TensorRT, real ORT numbers)."""
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edge.models.manifest import resolve_profile
    from edge.backends.cuda import PycudaAllocator
    from edge.engines import EngineManager, EngineRequest, engine_options
    from tests.fakes import make_fakes
    from tests.fakes.models import TinyModels
    m = resolve_profile("default", model_dir)
    trt, cuda, calls = make_fakes(gen)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path), progress=False, max_batch=8, opt_batch=4),
                            trt=trt, allocator=PycudaAllocator(cuda=cuda), models=TinyModels())
    backend = manager.open_backend(EngineRequest("recognizer", m.recognizer_family, m.recognizer_path))
    x = np.random.RandomState(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)
    cos = verify.row_cosines(backend.run(x)[0], OnnxRuntimeBackend(m.recognizer_path).run(x)[0])
    assert cos.min() > 0.999
    assert backend.max_batch == 8


@pytest.mark.parametrize("gen", ["8.2", "10"])
def test_real_pipeline_int8_build_with_real_preprocessing(tmp_path, model_dir, facedata, gen):
    """Real RetinaFace + SFace, real run-time preprocessing for calibration and verification,
    real photos; TensorRT is the fake (numbers from ONNX Runtime), so the figures show the
    plumbing is right, not what a Jetson's INT8 kernels would give."""
    import glob
    import cv2
    from calibration.collect import collect, folder_images
    from edge.models.manifest import resolve_profile
    from edge.pipeline import open_pipeline
    from edge.backends.cuda import PycudaAllocator
    from edge.engines import EngineManager, EngineRequest, engine_options
    from tests.fakes import make_fakes
    m = resolve_profile("default", model_dir)
    pipeline = open_pipeline("default", model_dir, "onnxruntime")
    photos = sorted(glob.glob(__import__("os").path.join(facedata, "lfw-dev", "images", "*", "*_0001.jpg")))[:80]
    frames = [cv2.imread(p) for p in photos]
    calib = str(tmp_path / "calib")
    collect(calib, frames, crop_fn=lambda img: [f.crop for f in pipeline.process(img)])
    trt, cuda, calls = make_fakes(gen)
    manager = EngineManager(engine_options(engine_dir=str(tmp_path / "e"), precision="auto", calibration_dir=calib,
                                           progress=False, detector_size=(320, 320), max_batch=8, opt_batch=4),
                            trt=trt, allocator=PycudaAllocator(cuda=cuda))
    det = manager.ensure(EngineRequest("detector", m.detector_family, m.detector_path))
    rec = manager.ensure(EngineRequest("recognizer", m.recognizer_family, m.recognizer_path))
    assert det.fingerprint.precision == rec.fingerprint.precision == "int8"
    dv, rv = det.metadata["verification"], rec.metadata["verification"]
    assert dv["samples_source"] == rv["samples_source"] == "held-out calibration samples"
    assert dv["reference_faces"] >= 5 and dv["recall"] > 0.9 and dv["mean_iou"] > 0.95
    assert rv["samples"] >= 5 and rv["mean_cosine"] > 0.99
