"""Importing the seed projects' embedding files, and the portable archive (export/import).

Seed embeddings come without face crops, so they are stored under a fingerprint label the
user gives (default `import:<file name>`): they match only when that model is active.
"""
import csv
import io
import json
import os
import tarfile
import time
from typing import Dict, List, Tuple

import numpy as np

from edge.errors import GalleryError
from edge.gallery.enrollment import name_from_image_id
from edge.gallery.store import Gallery, Sample, decode_crop, encode_crop

ARCHIVE_FORMAT = 1


def _group(pairs):
    # type: (List[Tuple[str, np.ndarray]]) -> Dict[str, List[np.ndarray]]
    grouped = {}  # type: Dict[str, List[np.ndarray]]
    for name, vector in pairs:
        grouped.setdefault(name, []).append(np.asarray(vector, dtype=np.float32))
    return grouped


def read_csv(path):
    # type: (str) -> List[Tuple[str, np.ndarray]]
    """Rows of `name, v1, v2, ...` (a header row is skipped)."""
    pairs = []
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip():
                continue
            try:
                pairs.append((row[0].strip(), np.array([float(v) for v in row[1:] if v.strip()], np.float32)))
            except ValueError:
                if number == 1:
                    continue  # header
                raise GalleryError("{} line {}: not `name, numbers...`".format(path, number))
    return pairs


def read_npy_pair(encodings_path, names_path):
    # type: (str, str) -> List[Tuple[str, np.ndarray]]
    encodings = np.load(encodings_path, allow_pickle=False)
    names = np.load(names_path, allow_pickle=False)
    if encodings.ndim != 2 or len(encodings) != len(names):
        raise GalleryError("{} and {} do not match: {} encodings, {} names".format(
            encodings_path, names_path, len(encodings), len(names)))
    return [(str(n), e) for n, e in zip(names, encodings)]


def read_json(path):
    # type: (str) -> List[Tuple[str, np.ndarray]]
    """`{image_id: embedding}`; the name is the image id without `_<n>` and extension."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise GalleryError("{}: expected an object {{image_id: embedding}}".format(path))
    return [(name_from_image_id(k), np.array(v, np.float32)) for k, v in sorted(data.items())]


def import_embeddings(gallery, pairs, fingerprint, source):
    # type: (Gallery, List[Tuple[str, np.ndarray]], str, str) -> int
    dims = set(len(v) for _, v in pairs)
    if len(dims) > 1:
        raise GalleryError("{}: embeddings of different lengths {}".format(source, sorted(dims)))
    count = 0
    for name, vectors in sorted(_group(pairs).items()):
        gallery.enroll(name, [Sample(None, v, source) for v in vectors], fingerprint)
        count += len(vectors)
    return count


def export_archive(gallery, path):
    # type: (Gallery, str) -> int
    """A tar.gz with manifest.json, crops/<sample>.png and embeddings/<n>.npy per fingerprint."""
    manifest = {"format": ARCHIVE_FORMAT, "exported": time.time(), "samples": [], "fingerprints": {}}
    vectors = {}  # type: Dict[str, List[np.ndarray]]
    tmp = path + ".part"
    with tarfile.open(tmp, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
        for sample in gallery.samples():
            entry = {"id": sample.id, "person": sample.person, "negative": sample.negative,
                     "source": sample.source, "created": sample.created, "crop": None, "embeddings": {}}
            if sample.crop is not None:
                entry["crop"] = "crops/{}.png".format(sample.id)
                add(entry["crop"], encode_crop(sample.crop))
            for fingerprint, vector in gallery.sample_embeddings(sample.id).items():
                rows = vectors.setdefault(fingerprint, [])
                entry["embeddings"][fingerprint] = len(rows)
                rows.append(vector)
            manifest["samples"].append(entry)
        for number, (fingerprint, rows) in enumerate(sorted(vectors.items())):
            buffer = io.BytesIO()
            np.save(buffer, np.vstack(rows).astype(np.float32))
            name = "embeddings/{}.npy".format(number)
            manifest["fingerprints"][fingerprint] = name
            add(name, buffer.getvalue())
        add("manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return len(manifest["samples"])


def import_archive(gallery, path):
    # type: (Gallery, str) -> int
    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, IOError, OSError) as exc:
        raise GalleryError("{} is not a faceedge gallery archive: {}".format(path, exc))
    with tar:
        def read(name):
            member = tar.extractfile(name)
            if member is None:
                raise GalleryError("{}: {} is missing".format(path, name))
            return member.read()
        try:
            manifest = json.loads(read("manifest.json").decode("utf-8"))
            matrices = dict((fp, np.load(io.BytesIO(read(name)), allow_pickle=False))
                            for fp, name in manifest["fingerprints"].items())
        except (KeyError, ValueError) as exc:
            raise GalleryError("{} is not a faceedge gallery archive: {}".format(path, exc))
        count = 0
        for entry in manifest["samples"]:
            crop = decode_crop(read(entry["crop"])) if entry.get("crop") else None
            embeddings = entry.get("embeddings", {})
            fingerprints = sorted(embeddings) or [None]
            # One sample row per stored sample, carrying its first fingerprint's embedding...
            first = fingerprints[0]
            vector = matrices[first][embeddings[first]] if first else None
            if entry.get("negative"):
                if not any(p.name == entry["person"] for p in gallery.list_people()):
                    continue  # a negative for someone absent here has nothing to veto
                ids = gallery.add_negative(entry["person"], [Sample(crop, vector, entry["source"])], first)
            else:
                ids = gallery.enroll(entry["person"], [Sample(crop, vector, entry["source"])], first)
            # ...and the other fingerprints' embeddings attached to the same sample.
            for fp in fingerprints[1:]:
                gallery.add_embedding(ids[0], fp, matrices[fp][embeddings[fp]])
            count += 1
    return count
