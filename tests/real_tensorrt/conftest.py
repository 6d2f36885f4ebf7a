"""These tests run inside an environment with a real tensorrt module (.ci/setup-tensorrt.sh), started
by tests/test_tensorrt_real.py; the ordinary test run does not collect them."""
import os

import pytest

if not os.environ.get("FACEEDGE_REAL_TENSORRT_RUN"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def trt():
    import tensorrt
    return tensorrt


@pytest.fixture(scope="session")
def generation(trt):
    """The fake generation that stands for this real module: 8.5, 10 or 11."""
    major, minor = (int(v) for v in trt.__version__.split(".")[:2])
    return "8.5" if (major, minor) == (8, 5) else str(major)
