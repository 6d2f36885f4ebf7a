"""The portable gallery archive: export and import (round trip).

A tar.gz holding, in this order:
  manifest.json          {"format": 2, "exported", "version", "fingerprints": {fp: "embeddings/<n>.npy"},
                          "samples": [{"id", "person", "negative", "source", "created",
                                       "crop": "crops/<id>.png" | null, "embeddings": {fp: row}}]}
  embeddings/<n>.npy     float32 matrix per model fingerprint
  crops/<id>.png         the aligned 112x112 face crops
The order lets import stream the file once (tar "r|gz"), so big galleries need neither
random access nor all crops in memory.
"""
import io
import json
import os
import tarfile
import time
from typing import Dict, Iterator, Optional

import numpy as np

from edge.errors import GalleryError
from edge.gallery.store import Gallery, Record

ARCHIVE_FORMAT = 2
# Bounds read from each member's header before reading it (a gzip of zeros claims any size):
MAX_MANIFEST_BYTES = 64 * 1024 * 1024      # ~300 bytes per sample: 200,000 samples
MAX_CROP_BYTES = 1024 * 1024               # a 112x112 PNG is ~30 kB
MAX_ROW_BYTES = 4096 * 8                   # one embedding row: up to 4096 dimensions of float64


def _read(tar, member, limit, path):
    # type: (tarfile.TarFile, tarfile.TarInfo, int, str) -> bytes
    if member.size > limit:
        raise GalleryError("{}: {} claims {} bytes, over the limit of {} for it; not a gallery archive "
                           "this faceedge wrote".format(path, member.name, member.size, limit))
    return tar.extractfile(member).read()


def _private(path):
    """A new file open for writing, mode 0600 from its creation (biometric data: never readable by
    others, not even while it is written)."""
    if os.path.lexists(path):
        os.unlink(path)       # a .part left by a killed export, maybe with other modes
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def export_archive(gallery, path):
    # type: (Gallery, str) -> int
    """Write a consistent snapshot of the gallery to path (atomically); returns the sample count."""
    tmp = path + ".part"
    try:
        with gallery.snapshot() as snap, _private(tmp) as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            now = time.time()

            def add(name, data):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(now)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))

            matrices = snap.embeddings()
            rows = dict((fp, dict((int(sid), i) for i, sid in enumerate(ids.tolist())))
                        for fp, (ids, _) in matrices.items())
            names = dict((fp, "embeddings/{}.npy".format(n)) for n, fp in enumerate(sorted(matrices)))
            samples = []
            for sample in snap.samples(with_crops=False):
                samples.append({
                    "id": sample.id, "person": sample.person, "negative": sample.negative,
                    "source": sample.source, "created": sample.created,
                    "crop": "crops/{}.png".format(sample.id) if sample.has_crop else None,
                    "embeddings": dict((fp, rows[fp][sample.id]) for fp in sorted(rows) if sample.id in rows[fp])})
            manifest = {"format": ARCHIVE_FORMAT, "exported": now, "version": snap.version,
                        "fingerprints": names, "samples": samples}
            add("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
            for fp, name in sorted(names.items()):
                buffer = io.BytesIO()
                np.save(buffer, matrices[fp][1].astype(np.float32), allow_pickle=False)
                add(name, buffer.getvalue())
            for sample in snap.samples(with_crops=True):
                if sample.crop_png:
                    add("crops/{}.png".format(sample.id), bytes(sample.crop_png))
        os.replace(tmp, path)
    except (IOError, OSError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise GalleryError("cannot write the archive {}: {}".format(path, exc))
    return len(samples)


def _records(tar, path):
    # type: (tarfile.TarFile, str) -> Iterator[Record]
    members = iter(tar)
    first = next(members, None)
    if first is None or first.name != "manifest.json":
        raise GalleryError("{} is not a faceedge gallery archive (manifest.json must come first)".format(path))
    try:
        manifest = json.loads(_read(tar, first, MAX_MANIFEST_BYTES, path).decode("utf-8"))
        if manifest.get("format") != ARCHIVE_FORMAT:
            raise GalleryError("{} has archive format {}, this faceedge reads format {}".format(
                path, manifest.get("format"), ARCHIVE_FORMAT))
        files = dict((name, fp) for fp, name in manifest["fingerprints"].items())
        samples = manifest["samples"]
        by_crop = dict((entry["crop"], entry) for entry in samples if entry.get("crop"))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise GalleryError("{}: unreadable manifest ({})".format(path, exc))
    matrices = {}  # type: Dict[str, np.ndarray]

    def record(entry, crop_png):
        try:
            vectors = dict((fp, matrices[fp][int(row)]) for fp, row in entry.get("embeddings", {}).items())
            return Record(entry["person"], bool(entry.get("negative")), crop_png, entry.get("source", ""),
                          entry.get("created"), vectors)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise GalleryError("{}: sample {} is inconsistent with the manifest ({})".format(
                path, entry.get("id"), exc))

    crops_started = False
    max_matrix = 4096 + MAX_ROW_BYTES * len(samples)
    for member in members:
        if not member.isfile() or (member.name not in files and member.name not in by_crop):
            continue                   # never read what the manifest does not name
        if member.name in files:
            data = _read(tar, member, max_matrix, path)
            try:
                matrices[files[member.name]] = np.load(io.BytesIO(data), allow_pickle=False)
            except ValueError as exc:
                raise GalleryError("{}: {} is not a float matrix ({})".format(path, member.name, exc))
        else:
            data = _read(tar, member, MAX_CROP_BYTES, path)
            if not crops_started:
                crops_started = True
                for entry in samples:      # the crop-less samples (imported embeddings) first
                    if not entry.get("crop"):
                        yield record(entry, None)
            yield record(by_crop.pop(member.name), data)
    if not crops_started:
        for entry in samples:
            if not entry.get("crop"):
                yield record(entry, None)
    if by_crop:
        raise GalleryError("{} is truncated: {} face crops are missing".format(path, len(by_crop)))


def import_archive(gallery, path, request_id=None):
    # type: (Gallery, str, Optional[str]) -> int
    """Add every sample of the archive as one change; returns the samples added."""
    try:
        with tarfile.open(path, "r|gz") as tar:
            added, _skipped = gallery.import_records(_records(tar, path), request_id=request_id)
    except (tarfile.TarError, EOFError, IOError, OSError, UnicodeDecodeError) as exc:
        raise GalleryError("{} is not a readable faceedge gallery archive: {}".format(path, exc))
    return added

