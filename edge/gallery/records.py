"""What the gallery stores and returns (containers), and how names, crops and vectors are stored."""
import json
import unicodedata
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from edge.errors import GalleryError

MAX_NAME_LENGTH = 100
REQUEST_HISTORY = 10000              # responses kept for repeated requests...
REQUEST_MAX_AGE_S = 30 * 24 * 3600.0  # ...and for at most 30 days

Sample = NamedTuple("Sample", [
    ("crop", Optional[np.ndarray]),       # 112x112x3 BGR uint8; None for imported embeddings
    ("embedding", Optional[np.ndarray]),  # for the fingerprint given with the change
    ("source", str),
])

Person = NamedTuple("Person", [
    ("id", int),
    ("name", str),
    ("samples", int),
    ("negatives", int),
    ("created", float),
])

GalleryMatrix = NamedTuple("GalleryMatrix", [
    ("vectors", np.ndarray),      # N x D float32, L2-normalised
    ("person_ids", np.ndarray),   # N int64
    ("names", List[str]),         # by row
    ("negative", np.ndarray),     # N bool: a "this is not them" sample
])

Summary = NamedTuple("Summary", [
    ("people", int),
    ("samples", int),
    ("negatives", int),
    ("fingerprints", List[str]),
    ("version", int),
])

StoredSample = NamedTuple("StoredSample", [
    ("id", int),
    ("person", str),
    ("negative", bool),
    ("crop", Optional[np.ndarray]),
    ("source", str),
    ("created", float),
])

Record = NamedTuple("Record", [          # one sample with everything known about it (import)
    ("person", str),
    ("negative", bool),
    ("crop_png", Optional[bytes]),
    ("source", str),
    ("created", Optional[float]),
    ("embeddings", Dict[str, np.ndarray]),  # fingerprint -> vector
])

SnapshotSample = NamedTuple("SnapshotSample", [
    ("id", int),
    ("person", str),
    ("negative", bool),
    ("has_crop", bool),
    ("crop_png", Optional[bytes]),         # None unless asked for
    ("source", str),
    ("created", float),
])


def _same_command(request_id, row):
    # type: (str, tuple) -> str
    """The stored response of a repeated request id, if it is the same command (digest)."""
    digest = getattr(request_id, "digest", None)
    if digest is not None and row[1] is not None and row[1] != digest:
        raise GalleryError("request_id {} was already used for another command; nothing was done: "
                           "use a new request_id for each command".format(json.dumps(request_id)))
    return row[0]


def validate_name(name):
    # type: (object) -> str
    if not isinstance(name, str):
        raise GalleryError("a name must be a string, not {}".format(type(name).__name__))
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise GalleryError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise GalleryError("a name must be at most {} characters (got {})".format(MAX_NAME_LENGTH, len(name)))
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in name):
        raise GalleryError("a name must not contain control characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise GalleryError("a name must not contain path separators or be '.' or '..'")
    return name


def encode_crop(crop):
    # type: (np.ndarray) -> bytes
    import cv2
    ok, png = cv2.imencode(".png", crop)
    if not ok:
        raise GalleryError("could not encode a face crop as PNG")
    return png.tobytes()


def decode_crop(data):
    # type: (Optional[bytes]) -> Optional[np.ndarray]
    if not data:
        return None
    import cv2
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _vector_bytes(vector):
    # type: (np.ndarray) -> bytes
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise GalleryError("an embedding must be a finite, non-zero vector")
    return (vector / norm).astype("<f4").tobytes()


def _busy(exc):
    # type: (sqlite3.OperationalError) -> bool
    return "locked" in str(exc) or "busy" in str(exc)


class _AlreadyDone(GalleryError):
    """Raised inside a change whose request id was already applied; carries the stored response."""

    def __init__(self, response):
        # type: (str) -> None
        super(_AlreadyDone, self).__init__("request already applied")
        self.response = response


AlreadyDone = _AlreadyDone
