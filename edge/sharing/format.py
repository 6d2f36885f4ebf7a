"""The shared gallery's messages (retained, under `<prefix>/_gallery/<shared_id>/`).

person/<person_id>  one person: stable id, revision, name, who changed it and when, samples
                    (aligned 112x112 crop as JPEG + embeddings per recognizer fingerprint, as
                    float16), negatives, ignored flag. An empty retained message removes the person.
manifest            revision, fingerprints, {person_id: revision} for every person, and the
                    removed ones ({person_id: revision}): the tombstone list.

Order of versions (last writer wins): (revision, removed, writer id), compared as tuples; at
equal revision a removal wins over an edit, then the greater writer id.
Size: at most MAX_SAMPLES positives and MAX_NEGATIVES negatives per person, each crop at most
MAX_CROP_BYTES: one person stays under MAX_PERSON_BYTES, far below the ~1 MB limit of brokers
that have one (mosquitto has none).
"""
import base64
import binascii
import json
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from edge.errors import FaceEdgeError

FORMAT = 1
MAX_SAMPLES = 16
MAX_NEGATIVES = 8
MAX_CROP_BYTES = 16 * 1024
MAX_FINGERPRINTS = 4                # embeddings per sample (models sharing one gallery)
MAX_DIM = 4096
MAX_PERSON_BYTES = 512 * 1024
MAX_MANIFEST_ENTRIES = 50000
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY = re.compile(r"^[0-9a-f]{8,64}$")
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class SharedFormatError(FaceEdgeError):
    """A shared-gallery message that does not follow the contract: ignored, logged."""


SharedSample = NamedTuple("SharedSample", [
    ("key", str),                         # stable over devices: sha256 of the crop JPEG (or the embedding)
    ("negative", bool),
    ("jpeg", Optional[bytes]),            # the aligned 112x112 crop; None for an imported embedding
    ("embeddings", Dict[str, np.ndarray]),  # fingerprint -> L2-normalised float32 vector
    ("source", str),
    ("created", float),
])

PersonMessage = NamedTuple("PersonMessage", [
    ("person_id", str),
    ("revision", int),
    ("name", str),
    ("changed_by", str),
    ("changed_at", float),
    ("ignored", bool),
    ("samples", List[SharedSample]),      # positives then negatives
])

Manifest = NamedTuple("Manifest", [
    ("gallery", str),
    ("revision", int),                    # sum of every person's and tombstone's revision
    ("writer", str),
    ("published_at", float),
    ("fingerprints", List[str]),
    ("people", Dict[str, int]),           # live people
    ("removed", Dict[str, int]),          # tombstones
])


def version_key(revision, removed, writer):
    # type: (int, bool, str) -> Tuple[int, int, str]
    return (int(revision), 1 if removed else 0, writer or "")


def valid_id(value):
    # type: (object) -> bool
    return isinstance(value, str) and bool(_ID.match(value))


def manifest_revision(people, removed):
    # type: (Dict[str, int], Dict[str, int]) -> int
    """Deterministic from the content: two sites holding the same people agree on it."""
    return int(sum(people.values()) + sum(removed.values()))


# -- encoding ------------------------------------------------------------------------------
def _b64(data):
    # type: (bytes) -> str
    return base64.b64encode(data).decode("ascii")


def _vector_text(vector):
    # type: (np.ndarray) -> str
    return _b64(np.asarray(vector, np.float32).reshape(-1).astype("<f2").tobytes())


def encode_person(message):
    # type: (PersonMessage) -> bytes
    def sample(s):
        return {"key": s.key, "crop_jpeg": _b64(s.jpeg) if s.jpeg else None,
                "embeddings": dict((fp, _vector_text(v)) for fp, v in sorted(s.embeddings.items())),
                "source": s.source, "created": round(float(s.created), 3)}
    body = {"format": FORMAT, "person_id": message.person_id, "revision": message.revision,
            "name": message.name, "changed_by": message.changed_by,
            "changed_at": round(float(message.changed_at), 3), "ignored": bool(message.ignored),
            "samples": [sample(s) for s in message.samples if not s.negative],
            "negatives": [sample(s) for s in message.samples if s.negative]}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_PERSON_BYTES:
        raise SharedFormatError("person {} is {} bytes as a message, over {}; fewer or smaller samples".format(
            message.person_id, len(data), MAX_PERSON_BYTES))
    return data


def encode_manifest(manifest):
    # type: (Manifest) -> bytes
    body = {"format": FORMAT, "gallery": manifest.gallery, "revision": manifest.revision,
            "writer": manifest.writer, "published_at": round(float(manifest.published_at), 3),
            "fingerprints": sorted(manifest.fingerprints), "people": manifest.people,
            "removed": manifest.removed}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


# -- decoding (everything from the broker is untrusted) ----------------------------------------
def _json(payload, limit, what):
    # type: (bytes, int, str) -> dict
    if len(payload) > limit:
        raise SharedFormatError("{} is {} bytes, over {}".format(what, len(payload), limit))
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SharedFormatError("{} is not JSON: {}".format(what, exc))
    if not isinstance(body, dict):
        raise SharedFormatError("{} must be a JSON object".format(what))
    if body.get("format") != FORMAT:
        raise SharedFormatError("{} has format {!r}; this device reads format {}".format(
            what, body.get("format"), FORMAT))
    return body


def _field(body, key, kind, what):
    value = body.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SharedFormatError("{}: \"{}\" is missing or not {}".format(what, key, getattr(kind, "__name__", kind)))
    return value


def _number(body, key, what):
    # type: (dict, str, str) -> float
    value = _field(body, key, (int, float), what)
    if isinstance(value, bool) or not np.isfinite(value):
        raise SharedFormatError("{}: \"{}\" must be a number".format(what, key))
    return float(value)


def _unb64(text, what):
    # type: (object, str) -> bytes
    if not isinstance(text, str):
        raise SharedFormatError("{} must be base64 text".format(what))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SharedFormatError("{} is not valid base64".format(what))


def _sample(item, negative, what):
    # type: (object, bool, str) -> SharedSample
    if not isinstance(item, dict):
        raise SharedFormatError("{} must be an object".format(what))
    key = item.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SharedFormatError("{}: \"key\" must be 8-64 lowercase hex digits".format(what))
    jpeg = None
    if item.get("crop_jpeg") is not None:
        jpeg = _unb64(item["crop_jpeg"], what + ".crop_jpeg")
        if len(jpeg) > MAX_CROP_BYTES or not jpeg.startswith(b"\xff\xd8"):
            raise SharedFormatError("{}.crop_jpeg must be a JPEG of at most {} bytes".format(what, MAX_CROP_BYTES))
    raw = item.get("embeddings") or {}
    if not isinstance(raw, dict) or len(raw) > MAX_FINGERPRINTS:
        raise SharedFormatError("{}.embeddings must map at most {} fingerprints to vectors".format(
            what, MAX_FINGERPRINTS))
    embeddings = {}
    for fingerprint, text in raw.items():
        if not _FINGERPRINT.match(fingerprint):
            raise SharedFormatError("{}.embeddings: bad fingerprint {!r}".format(what, fingerprint[:80]))
        data = _unb64(text, what + ".embeddings")
        if not 2 * 16 <= len(data) <= 2 * MAX_DIM or len(data) % 2:
            raise SharedFormatError("{}.embeddings: a vector must have 16-{} float16 values".format(what, MAX_DIM))
        vector = np.frombuffer(data, "<f2").astype(np.float32)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise SharedFormatError("{}.embeddings: a vector is zero or not finite".format(what))
        embeddings[fingerprint] = vector / norm
    if jpeg is None and not embeddings:
        raise SharedFormatError("{} has neither a crop nor an embedding".format(what))
    source = item.get("source", "")
    created = item.get("created", 0.0)
    if not isinstance(source, str) or isinstance(created, bool) or not isinstance(created, (int, float)):
        raise SharedFormatError("{}: \"source\" must be text and \"created\" a number".format(what))
    return SharedSample(key, negative, jpeg, embeddings, source[:200], float(created))


def decode_person(payload, person_id):
    # type: (bytes, str) -> PersonMessage
    """person_id: from the topic; the body must agree with it."""
    what = "person/{}".format(person_id)
    body = _json(payload, MAX_PERSON_BYTES, what)
    if body.get("person_id") != person_id:
        raise SharedFormatError("{}: its body says person_id {!r}".format(what, body.get("person_id")))
    revision = _field(body, "revision", int, what)
    if revision < 1:
        raise SharedFormatError("{}: revision must be at least 1".format(what))
    name = _field(body, "name", str, what)
    changed_by = _field(body, "changed_by", str, what)
    if not valid_id(changed_by):
        raise SharedFormatError("{}: changed_by must be a device id".format(what))
    positives, negatives = body.get("samples"), body.get("negatives", [])
    if not isinstance(positives, list) or not isinstance(negatives, list):
        raise SharedFormatError("{}: samples and negatives must be lists".format(what))
    if len(positives) > MAX_SAMPLES or len(negatives) > MAX_NEGATIVES:
        raise SharedFormatError("{}: at most {} samples and {} negatives".format(what, MAX_SAMPLES, MAX_NEGATIVES))
    samples = [_sample(s, False, "{}.samples[{}]".format(what, i)) for i, s in enumerate(positives)]
    samples += [_sample(s, True, "{}.negatives[{}]".format(what, i)) for i, s in enumerate(negatives)]
    if len(set(s.key for s in samples)) != len(samples):
        raise SharedFormatError("{}: two samples share a key".format(what))
    return PersonMessage(person_id, revision, name, changed_by, _number(body, "changed_at", what),
                         bool(body.get("ignored", False)), samples)


def decode_manifest(payload):
    # type: (bytes) -> Manifest
    what = "manifest"
    body = _json(payload, MAX_MANIFEST_BYTES, what)
    tables = []
    for key in ("people", "removed"):
        table = body.get(key, {})
        if not isinstance(table, dict) or len(table) > MAX_MANIFEST_ENTRIES:
            raise SharedFormatError("manifest: \"{}\" must map at most {} person ids to revisions".format(
                key, MAX_MANIFEST_ENTRIES))
        for person_id, revision in table.items():
            if not valid_id(person_id) or not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
                raise SharedFormatError("manifest: \"{}\" has a bad entry {!r}".format(key, person_id[:80]))
        tables.append(dict(table))
    prints = body.get("fingerprints", [])
    if not isinstance(prints, list) or not all(isinstance(p, str) for p in prints):
        raise SharedFormatError("manifest: fingerprints must be a list of strings")
    writer = body.get("writer", "")
    return Manifest(str(body.get("gallery", "")), manifest_revision(tables[0], tables[1]),
                    writer if isinstance(writer, str) else "", _number(body, "published_at", what),
                    list(prints), tables[0], tables[1])
