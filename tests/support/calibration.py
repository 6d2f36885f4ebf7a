"""A small synthetic calibration set (engine builder tests)."""
import numpy as np


def calibration_set(tmp_path, count=80):
    from calibration.collect import collect
    rng = np.random.RandomState(3)
    crops = [rng.randint(0, 256, size=(112, 112, 3)).astype(np.uint8) for _ in range(count)]
    frames = [rng.randint(0, 256, size=(64, 64, 3)).astype(np.uint8) for _ in range(40)]
    out = str(tmp_path / "calib")
    collect(out, frames, extra_crops=crops)
    return out
