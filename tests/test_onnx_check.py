"""engine_builder.onnx_check: each TensorRT 8.2 parser constraint found on a small real ONNX file."""
import numpy as np
import pytest

from engine_builder.onnx_check import check_model, describe


def _model(path, nodes, inputs, inits=(), opset=13, outputs=("y",)):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def _input(name, shape, elem=None):
    from onnx import TensorProto, helper
    return helper.make_tensor_value_info(name, elem or TensorProto.FLOAT, shape)


W = np.ones((2, 3, 3, 3), np.float32)


@pytest.fixture
def helper():
    from onnx import helper
    return helper


def test_a_clean_model_has_no_problem(tmp_path, helper):
    path = _model(str(tmp_path / "ok.onnx"), [helper.make_node("Conv", ["x", "w"], ["y"])],
                  [_input("x", ["N", 3, "H", "W"])], [("w", W)])
    assert check_model(path) == []


def test_each_constraint_is_reported(tmp_path, helper):
    from onnx import TensorProto
    nodes = [helper.make_node("Identity", ["w"], ["w2"]),
             helper.make_node("Conv", ["x", "w2"], ["c"]),
             helper.make_node("NonZero", ["c"], ["y"])]
    path = _model(str(tmp_path / "bad.onnx"), nodes, [_input("x", [1, "C", 112, 112]),
                                                      _input("ids", [1, 4], TensorProto.INT64)],
                  [("w", W)], opset=17)
    problems = check_model(path)
    found = dict((p.check, p) for p in problems if p.where != "input ids" or p.check != "dynamic-axes")
    assert set(found) == {"opset", "operator", "conv-initializer", "input-type", "dynamic-axes"}
    assert [p.where for p in problems if p.check == "dynamic-axes"] == ["input x", "input ids"]
    assert "opset 17" in found["opset"].text
    assert found["operator"].where == "node 2 (NonZero -)"
    assert "weights w2" in found["conv-initializer"].text
    assert found["input-type"].where == "input ids" and "INT64" in found["input-type"].text
    assert "axes [1]" in found["dynamic-axes"].text and "recognizer" in found["dynamic-axes"].text
    assert all(line.endswith("]") for line in describe(check_model(path)))


def test_a_detector_may_have_dynamic_height_and_width_but_not_channels(tmp_path, helper):
    conv = [helper.make_node("Conv", ["x", "w"], ["y"])]
    ok = _model(str(tmp_path / "d.onnx"), conv, [_input("x", ["N", 3, "H", "W"])], [("w", W)])
    bad = _model(str(tmp_path / "c.onnx"), conv, [_input("x", [1, "C", "H", "W"])], [("w", W)])
    assert check_model(ok) == []
    assert [p.check for p in check_model(bad)] == ["dynamic-axes"]
