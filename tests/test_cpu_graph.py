"""PRelu rewritten for ONNX Runtime's CPU (edge/models/cpu_graph.py): same embeddings of real faces,
the file on disk untouched, and models it must not change left alone."""
import hashlib
import os

import numpy as np
import pytest

from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge.models.cpu_graph import for_cpu
from edge.recognizers import create_recognizer
from tests.media import known

RECOGNIZERS = [("sface", "sface_2021dec_fp32.onnx"), ("arcface", "w600k_mbf.onnx")]


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _crops(pipeline, facedata):
    from edge.imageio import read_image
    crops = []
    for name in ("obama.jpg", "biden.jpg", "obama2.jpg"):
        crops.extend(face.crop for face in pipeline.locate(read_image(known(facedata, name)), min_quality=0.0)[0])
    assert len(crops) >= 3
    return crops


class _FileSession(OnnxRuntimeBackend):
    """The same backend on the file exactly as it is (no rewrite): the reference."""

    def __init__(self, path):
        import onnxruntime as ort
        self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.path = path
        self.input_name = self._session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self._session.get_outputs())


@pytest.mark.parametrize("family,filename", RECOGNIZERS)
def test_rewritten_recognizer_gives_the_same_embeddings_of_real_faces(family, filename, model_dir, pipeline,
                                                                        facedata):
    import onnx
    path = os.path.join(model_dir, filename)
    before = _sha(path)
    rewritten = for_cpu(path)
    assert rewritten is not None
    ops = [n.op_type for n in onnx.load_from_string(rewritten).graph.node]
    assert "PRelu" not in ops and ops.count("BatchNormalization") > 0
    crops = _crops(pipeline, facedata)
    ours = create_recognizer(family, OnnxRuntimeBackend(path, threads=1)).embed(crops)
    reference = create_recognizer(family, _FileSession(path)).embed(crops)
    cosines = np.sum(ours * reference, axis=1)
    assert cosines.min() > 0.99999, cosines
    assert _sha(path) == before          # the file, its sha256 and the fingerprint stay


def _prelu_model(slope, dtype=np.float32):
    from onnx import TensorProto, helper, numpy_helper
    kind = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", kind, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", kind, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "s"], ["y"])], "g", [x], [y],
                              [numpy_helper.from_array(np.asarray(slope, dtype), "s")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("slope", [[[[0.25]], [[-0.5]], [[1.5]]], [0.25, -0.5, 1.5]])
def test_per_channel_prelu_of_any_sign_is_exact(slope, tmp_path):
    import onnx
    import onnxruntime as ort
    path = str(tmp_path / "m.onnx")
    onnx.save(_prelu_model(slope), path)
    x = np.random.RandomState(0).randn(1, 3, 4, 4).astype(np.float32)
    want = np.where(x > 0, x, x * np.asarray(slope, np.float32).reshape(1, 3, 1, 1))
    got = ort.InferenceSession(for_cpu(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, want, atol=1e-6)


def test_a_float16_model_keeps_its_type(tmp_path):
    """`models convert --to fp16` output: the inserted parameters are float16 too, or ONNX
    Runtime refuses the graph (BatchNormalization bound to float16 and float)."""
    import onnx
    import onnxruntime as ort
    path = str(tmp_path / "m16.onnx")
    slope = [0.25, -0.5, 1.5]
    onnx.save(_prelu_model(slope, np.float16), path)
    x = np.random.RandomState(0).randn(1, 3, 4, 4).astype(np.float16)
    want = np.where(x > 0, x, x * np.asarray(slope, np.float16).reshape(1, 3, 1, 1))
    got = ort.InferenceSession(for_cpu(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.dtype == np.float16 and np.allclose(got, want, atol=2e-3)


def test_models_it_must_not_change_are_loaded_as_they_are(tmp_path, model_dir):
    import onnx
    scalar = str(tmp_path / "scalar.onnx")
    onnx.save(_prelu_model([0.25]), scalar)            # one slope for all channels: nothing per channel
    assert for_cpu(scalar) is None
    assert for_cpu(os.path.join(model_dir, "scrfd_500m_bnkps.onnx")) is None      # no PRelu
    broken = str(tmp_path / "broken.onnx")
    with open(broken, "wb") as f:
        f.write(b"not a model")
    assert for_cpu(broken) is None                     # ONNX Runtime then says what is wrong
