"""Importing the seed projects' embedding files.

Seed embeddings come without face crops, so they are stored under a fingerprint label the
user gives (default `import:<file name>`): they match only when that model is active, and
they cannot be re-embedded for another model.
"""
import csv
import json
import os
import re
from typing import List, Optional, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.gallery.enrollment import name_from_image_id
from edge.gallery.store import Gallery, Record

Pair = Tuple[str, np.ndarray]
_NUMBER_LIST = re.compile(r"[\s,;\[\]()]+")


def _vector(text):
    # type: (str) -> np.ndarray
    return np.array([float(v) for v in _NUMBER_LIST.split(text) if v], np.float32)


def read_csv(path):
    # type: (str) -> List[Pair]
    """Rows of `name, v1, v2, ...` or `name, "[v1 v2 ...]"`; a header row is skipped."""
    pairs = []
    try:
        with open(path, newline="") as f:
            for number, row in enumerate(csv.reader(f), 1):
                if not row or not row[0].strip():
                    continue
                try:
                    vector = _vector(" ".join(row[1:]))
                except ValueError:
                    if number == 1:
                        continue  # header
                    raise GalleryError("{} line {}: expected `name, numbers...`".format(path, number))
                if not len(vector):
                    raise GalleryError("{} line {}: no embedding after the name".format(path, number))
                pairs.append((row[0].strip(), vector))
    except (IOError, OSError, UnicodeDecodeError) as exc:
        raise GalleryError("cannot read {}: {}".format(path, exc))
    return pairs


def read_npy_pair(encodings_path, names_path):
    # type: (str, str) -> List[Pair]
    """face_recognition-style `face_encoding.npy` (N x D) and `face_name.npy` (N names)."""
    try:
        encodings = np.load(encodings_path, allow_pickle=False)
        names = np.load(names_path, allow_pickle=False)
    except ValueError as exc:
        # Pickled object arrays could run code: not loaded.
        raise GalleryError("cannot load {} / {} without pickle ({}); save them as plain arrays "
                           "(np.save(path, np.array(names, dtype=str)))".format(encodings_path, names_path, exc))
    except (IOError, OSError) as exc:
        raise GalleryError("cannot read {} / {}: {}".format(encodings_path, names_path, exc))
    if encodings.ndim != 2 or names.ndim != 1 or len(encodings) != len(names):
        raise GalleryError("{} and {} do not match: encodings of shape {}, {} names".format(
            encodings_path, names_path, encodings.shape, len(names)))
    return [(n.decode("utf-8") if isinstance(n, bytes) else str(n), e) for n, e in zip(names.tolist(), encodings)]


def read_json(path):
    # type: (str) -> List[Pair]
    """`{image_id: embedding}`; the name is the image id without `_<n>` and extension."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError) as exc:
        raise GalleryError("cannot read {} as JSON: {}".format(path, exc))
    if not isinstance(data, dict):
        raise GalleryError("{}: expected an object {{image_id: embedding}}".format(path))
    pairs = []
    for key, value in sorted(data.items()):
        try:
            pairs.append((name_from_image_id(key), np.array(value, np.float32).reshape(-1)))
        except (TypeError, ValueError):
            raise GalleryError("{}: the embedding of {!r} is not a list of numbers".format(path, key))
    return pairs


def import_embeddings(gallery, pairs, fingerprint, source, request_id=None):
    # type: (Gallery, List[Pair], str, str, Optional[str]) -> int
    """All pairs as one change; returns how many samples were added."""
    if not pairs:
        raise GalleryError("{}: no embeddings to import".format(source))
    dims = set(len(v) for _, v in pairs)
    if len(dims) > 1:
        raise GalleryError("{}: embeddings of different lengths {}".format(source, sorted(dims)))
    records = (Record(name, False, None, source, None, {fingerprint: vector}) for name, vector in pairs)
    added, _ = gallery.import_records(records, request_id=request_id)
    return added


def default_fingerprint(path):
    # type: (str) -> str
    return "import:" + os.path.basename(path)
