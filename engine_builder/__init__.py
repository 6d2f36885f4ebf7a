"""ONNX -> TensorRT engines, built on the device; the engine cache and calibrator."""
