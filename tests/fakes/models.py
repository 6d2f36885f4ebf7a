"""Tiny real ONNX models (built with the onnx package) standing in for a recognizer and a detector."""
import numpy as np


def tiny_recognizer(path, dynamic_batch=True):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.RandomState(1)
    w = numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((3, 16)).astype(np.float32), "fc")
    batch = "N" if dynamic_batch else 1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["f"]),
         helper.make_node("MatMul", ["f", "fc"], ["fc1"])],
        "tinyrec",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [batch, 16])],
        initializer=[w, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def tiny_detector(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.RandomState(2)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["loc"], pads=[1, 1, 1, 1], strides=[8, 8]),
         helper.make_node("Sigmoid", ["loc"], ["conf"])],
        "tinydet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("loc", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("conf", TensorProto.FLOAT, None)],
        initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


class TinyModels(object):
    """RunTimeModels stand-in for the tiny models: BGR->RGB, HWC->NCHW, /255."""

    def recognizer_preprocess(self, family, backend):
        def preprocess(crops):
            return np.stack([c[:, :, ::-1].transpose(2, 0, 1) for c in crops]).astype(np.float32) / 255.0
        return preprocess

    def detector(self, family, backend, size):
        return _TinyDetector(backend, tuple(size))


class _TinyDetector(object):
    def __init__(self, backend, size):
        self.backend, self.size = backend, size

    def preprocess(self, image):
        import cv2
        img = cv2.resize(image, (self.size[1], self.size[0]))
        return img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0, None

    def detect(self, image):
        return []
