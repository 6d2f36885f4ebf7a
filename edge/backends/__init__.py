"""Inference backends: ONNX Runtime (any machine) and the TensorRT runtime (Jetson).

Choosing one, and building/finding TensorRT engines, is edge.engines' job (above this package
and engine_builder); this package imports neither.
"""
from edge.backends.base import Backend

KINDS = ("auto", "tensorrt", "onnxruntime")

__all__ = ["Backend", "KINDS"]
