"""The gallery/set actions on unknown identities and track decisions:

  unknowns  list them (optional "with_crop": a best-crop JPEG in base64 each)
  name      "unknown_id" + "name": the kept faces become samples of that person (new or existing)
  ignore    "unknown_id": never report that face again (its tracks make no events)
  forget    "unknown_id": delete its crops and embeddings now
  wrong     "event_id" (or "track_id"): "that was not X": the track's faces become negatives of X;
            an open track is decided again (an `update` event when that changes it)
  recognize "images": every face per image with bbox, identity / unknown_id, similarity, quality;
            changes nothing

Each function takes the context and the command and returns the result (the caller wraps it
in the gallery/response body); changes are committed with the request id before it returns.
"""
import base64
import json
from typing import Callable, List, NamedTuple, Optional

import numpy as np

from edge.errors import FaceEdgeError, GalleryError
from edge.gallery.store import Sample

ACTIONS = ("unknowns", "name", "ignore", "forget", "wrong", "recognize")
KEYS = ("unknown_id", "event_id", "track_id", "with_crop")
STATE_LIST = 20    # identities listed in the retained unknowns/state

Context = NamedTuple("Context", [
    ("gallery", object),
    ("store", object),           # UnknownStore
    ("index", object),           # UnknownIndex
    ("tracks", object),          # UnknownTracks, or None outside the daemon (no `wrong` there)
    ("matcher", Callable[[], object]),   # the gallery matcher with the daemon's open-set rule
    ("fingerprint", str),
])


class ActionError(FaceEdgeError):
    pass


def _identity_dict(item, crop=None):
    out = {"unknown_id": item.unknown_id, "first_seen": round(item.first_seen, 3),
           "last_seen": round(item.last_seen, 3), "visits": item.visits, "cameras": list(item.cameras),
           "ignored": item.ignored, "tracks": item.tracks, "crops": item.crops}
    if crop is not None:
        out["best_crop"] = crop
    return out


def _jpeg(image, quality=90):
    # type: (Optional[np.ndarray], int) -> Optional[str]
    if image is None:
        return None
    import cv2
    ok, data = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    return base64.b64encode(data.tobytes()).decode("ascii") if ok else None


def list_unknowns(ctx, command, request_id=None):
    # type: (Context, dict, Optional[str]) -> dict
    with_crop = command.get("with_crop", False)
    if not isinstance(with_crop, bool):
        raise ActionError("\"with_crop\" must be true or false")
    items = []
    for item in ctx.store.identities():
        crop = _jpeg(ctx.store.best_crop(item.unknown_id)) if with_crop else None
        items.append(_identity_dict(item, crop))
    return {"unknowns": items}


def state_json(store):
    # type: (object) -> str
    """The retained <root>/unknowns/state: counts and the most recently seen identities."""
    active, ignored, tracks = store.counts()
    recent = [_identity_dict(i) for i in store.identities() if not i.ignored][:STATE_LIST]
    return json.dumps({"unknowns": active, "ignored": ignored, "tracks": tracks, "recent": recent,
                       "max_tracks": store.max_tracks, "keep_days": store.keep_days}, sort_keys=True)


def _unknown_id(command):
    # type: (dict) -> str
    from edge.unknowns.store import label, parse_label
    return label(parse_label(command.get("unknown_id")))


def name_unknown(ctx, command, request_id, name, respond):
    # type: (Context, dict, Optional[str], str, Callable[[object], str]) -> dict
    unknown_id = _unknown_id(command)
    shape = lambda ids: {"unknown_id": unknown_id, "name": name, "sample_ids": list(ids), "added": len(ids)}
    ids = ctx.store.name(unknown_id, name, request_id=request_id, respond=lambda ids: respond(shape(ids)))
    return shape(ids)


def ignore_unknown(ctx, command, request_id, respond):
    # type: (Context, dict, Optional[str], Callable[[object], str]) -> dict
    unknown_id = _unknown_id(command)
    shape = lambda faces: {"unknown_id": unknown_id, "ignored": True, "faces": faces}
    return shape(ctx.store.ignore(unknown_id, request_id=request_id, respond=lambda n: respond(shape(n))))


def forget_unknown(ctx, command, request_id, respond):
    # type: (Context, dict, Optional[str], Callable[[object], str]) -> dict
    unknown_id = _unknown_id(command)
    shape = lambda count: {"unknown_id": unknown_id, "deleted_crops": count}
    return shape(ctx.store.forget(unknown_id, request_id=request_id, respond=lambda n: respond(shape(n))))


def wrong(ctx, command, request_id, respond):
    # type: (Context, dict, Optional[str], Callable[[object], str]) -> dict
    """The track's kept faces become negatives of the person its event named."""
    if ctx.tracks is None:
        raise ActionError("wrong needs the running daemon (it remembers the tracks); not available here")
    event_id, track_id = command.get("event_id"), command.get("track_id")
    if (event_id is None) == (track_id is None):
        raise ActionError("give either \"event_id\" or \"track_id\"")
    for key, value in (("event_id", event_id), ("track_id", track_id)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
            raise ActionError("\"{}\" must be a non-empty string".format(key))
    ref = ctx.tracks.find(event_id=event_id, track_id=track_id)
    if ref is None:
        raise ActionError("no recent track for {} {!r}: the daemon remembers the tracks of this run only, the "
                          "latest few hundred".format("event_id" if event_id else "track_id", event_id or track_id))
    if ref.identity is None:
        raise ActionError("track {} was not named anyone: nothing is wrong; use name or ignore on its unknown_id"
                          .format(ref.track_id))
    faces = ctx.tracks.faces(ref.track_id)
    if not faces:
        raise ActionError("track {} has no embedded face to learn from".format(ref.track_id))
    samples = [Sample(f.crop, f.embedding, "wrong:{}".format(ref.track_id)) for f in faces]
    shape = lambda ids: {"name": ref.identity, "track_id": ref.track_id, "negatives": len(ids),
                         "sample_ids": list(ids), "redecided": ref.open}
    try:
        ids = ctx.gallery.add_negative(ref.identity, samples, ctx.fingerprint, request_id=request_id,
                                       respond=lambda ids: respond(shape(ids)))
    except GalleryError as exc:
        raise ActionError("cannot mark track {} as not {}: {}".format(ref.track_id, ref.identity, exc))
    if ref.open:
        ctx.tracks.request_redecide(ref.track_id, ctx.gallery.version)
    return shape(ids)


def recognize(ctx, images, pipeline):
    # type: (Context, List[np.ndarray], object) -> dict
    """Every face in every image against the gallery and the kept unknown identities."""
    matcher = ctx.matcher()
    results = []
    for i, image in enumerate(images):
        faces = pipeline.process(image, "images[{}]".format(i))
        out = []
        for face, match in zip(faces, matcher.match_faces(faces)):
            out.append(_face_result(ctx, face, match))
        results.append({"index": i, "width": int(image.shape[1]), "height": int(image.shape[0]), "faces": out})
    return {"images": results}


def _face_result(ctx, face, match):
    identity = match.identity if match else None
    similarity = float(match.similarity) if match else 0.0
    unknown_id, ignored = None, False
    if face.embedding is not None:
        found = ctx.index.match_one(face.embedding)
        if found.ignored and (identity is None or found.similarity > similarity):
            identity, unknown_id, ignored, similarity = None, found.unknown_id, True, found.similarity
        elif identity is None and found.unknown_id is not None:
            unknown_id, similarity = found.unknown_id, found.similarity
    return {"bbox": [round(float(v), 1) for v in face.detection.bbox], "identity": identity,
            "unknown_id": unknown_id, "ignored": ignored, "similarity": round(similarity, 4),
            "quality": round(float(face.quality.score), 3), "usable": face.embedding is not None}
