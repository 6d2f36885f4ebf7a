"""`python -m tests.fault_daemon run --config FILE`: the real daemon with one injected fault.

FACEEDGE_FAULT_HANG=PATH: while PATH exists, every inference call blocks (a hung GPU/driver).
"""
import os
import time

from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
from edge.cli import main


def _install_hang(path):
    run = OnnxRuntimeBackend.run

    def hanging_run(self, batch):
        while os.path.exists(path):
            time.sleep(0.05)
        return run(self, batch)
    OnnxRuntimeBackend.run = hanging_run


if __name__ == "__main__":
    if os.environ.get("FACEEDGE_FAULT_HANG"):
        _install_hang(os.environ["FACEEDGE_FAULT_HANG"])
    main()
