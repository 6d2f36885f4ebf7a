"""Daemon events (new / update / end per track) and their JSON form."""
import datetime
import json
import uuid
from typing import NamedTuple, Optional, Tuple

EVENT_TYPES = ("new", "update", "end")

Latency = NamedTuple("Latency", [
    ("capture", float),    # frame captured -> processing started (queueing)
    ("detect", float),
    ("align", float),
    ("embed", float),
    ("match", float),
    ("publish", float),    # deciding and building the event after matching
    ("total", float),      # frame captured -> event ready for the outbox (the broker's round trip
                           # is not in it: `faceedge bench --live` measures that from a subscriber)
])

ZERO_LATENCY = Latency(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class Event(NamedTuple):
    type: str
    event_id: str
    track_id: str
    camera: str
    identity: Optional[str]
    similarity: float
    bbox: Tuple[float, float, float, float]
    quality: float
    frame_time: float
    confident: bool
    latency: Latency
    snapshot: Optional[str] = None      # base64 JPEG of the face, only when snapshots are enabled
    unknown_id: Optional[str] = None    # an unknown track's unknown identity (edge/unknowns), when kept

    def to_dict(self):
        # type: () -> dict
        out = {
            "type": self.type,
            "event_id": self.event_id,
            "track_id": self.track_id,
            "camera": self.camera,
            "identity": self.identity,
            "similarity": round(float(self.similarity), 4),
            "bbox": [round(float(v), 1) for v in self.bbox],
            "quality": round(float(self.quality), 3),
            "confident": bool(self.confident),
            "frame_time": round(float(self.frame_time), 3),
            "timestamp": iso_utc(self.frame_time),
            "latency_ms": dict((k, round(float(v), 1)) for k, v in zip(Latency._fields, self.latency)),
        }
        if self.snapshot is not None:
            out["snapshot"] = self.snapshot
        if self.identity is None:
            out["unknown_id"] = self.unknown_id
        return out

    def presence_fields(self):
        # type: () -> dict
        """What a presence message repeats of the event that changed it (not the whole body again)."""
        out = {"camera": self.camera, "similarity": round(float(self.similarity), 4), "event_id": self.event_id,
               "track_id": self.track_id, "timestamp": iso_utc(self.frame_time)}
        if self.identity is None:
            out["unknown_id"] = self.unknown_id
        return out

    def to_json(self):
        # type: () -> str
        return json.dumps(self.to_dict(), sort_keys=True)


def new_event_id():
    # type: () -> str
    return uuid.uuid4().hex


def iso_utc(epoch):
    # type: (float) -> str
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[:-3] + "Z"
