"""Choosing the samples of one live enrollment: the request, the selection, the outcome.

`SampleCollector` has no threads and no I/O: it is offered the faces of each frame and keeps a
crop only when the frame has exactly one usable face and that face differs from every crop
kept so far (embedding or head pose), so a person standing still gives one sample, not ten
copies. Used by the daemon's `LiveEnroller` (edge/daemon/live_enroll.py) and by
`faceedge enroll NAME --camera CAM` (edge/commands/_live_enroll.py).
"""
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from edge.errors import FaceEdgeError
from edge.gallery.store import Sample
from edge.types import Face, Match

DEFAULT_SECONDS = 15.0
DEFAULT_SAMPLES = 10
MAX_SECONDS = 600.0
MAX_SAMPLES = 50
# Two crops are "the same" above this cosine similarity unless the head turned by POSE_STEP:
# the same photo panned and zoomed stays above ~0.93; two photos of one person are ~0.4-0.8.
MAX_SIMILARITY = 0.90
POSE_STEP = 12.0
# Frames that strongly match another person before the enrollment is refused.
OTHER_PERSON_FRAMES = 3


class LiveEnrollError(FaceEdgeError):
    pass


LiveRequest = NamedTuple("LiveRequest", [
    ("request_id", Optional[str]),
    ("name", str),
    ("camera", str),
    ("seconds", float),
    ("samples", int),          # stop early when this many distinct samples are kept
    ("min_samples", int),      # fewer at the end: nothing is enrolled
])

Progress = NamedTuple("Progress", [
    ("samples", int),               # distinct samples kept so far
    ("target", int),
    ("min_samples", int),
    ("frames", int),                # frames of the camera seen
    ("one_face_frames", int),       # with exactly one usable face
    ("several_faces_frames", int),  # with two or more usable faces (not used)
    ("other_face_frames", int),     # one face, but not like the ones kept (someone else stepped in)
    ("no_usable_face_frames", int),  # no face, or none above the quality bar
    ("elapsed_s", float),
    ("seconds", float),
])

Outcome = NamedTuple("Outcome", [
    ("ok", bool),
    ("samples", List[Sample]),
    ("reason", Optional[str]),      # why nothing is enrolled (ok False)
    ("other_person", Optional[str]),  # the person the face already matches, when that is the reason
    ("progress", Progress),
])


def request_from_command(command, request_id, name, cameras):
    # type: (dict, Optional[str], str, Sequence[str]) -> LiveRequest
    """Validate the enroll_live fields (name already validated by the caller)."""
    camera = command.get("camera")
    if not isinstance(camera, str) or not camera:
        raise LiveEnrollError("\"camera\" must be the name of a camera ({})".format(", ".join(cameras) or "none configured"))
    if camera not in cameras:
        raise LiveEnrollError("no camera named {!r}; cameras: {}".format(camera, ", ".join(cameras) or "none configured"))
    seconds = _number(command, "seconds", DEFAULT_SECONDS, 1.0, MAX_SECONDS, float)
    samples = int(_number(command, "samples", DEFAULT_SAMPLES, 1, MAX_SAMPLES, int))
    min_samples = int(_number(command, "min_samples", default_min_samples(samples), 1, samples, int))
    return LiveRequest(request_id, name, camera, seconds, samples, min_samples)


def default_min_samples(samples):
    # type: (int) -> int
    return max(1, (samples + 1) // 2)


def _number(command, key, default, low, high, kind):
    value = command.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise LiveEnrollError("\"{}\" must be {} between {} and {}".format(
            key, "an integer" if kind is int else "a number", low, high))
    if not low <= value <= high:
        raise LiveEnrollError("\"{}\" must be between {} and {}, got {}".format(key, low, high, value))
    return kind(value)


class SampleCollector(object):
    """Chooses distinct single-face crops for one enrollment. Not thread-safe: one caller."""

    def __init__(self, request, strong_similarity, same_person=None, started=None, clock=time.monotonic):
        # type: (LiveRequest, float, Optional[float], Optional[float], Callable[[], float]) -> None
        """strong_similarity: a face matching another person this well 'already is' them;
        same_person (the match threshold): a new crop must be this close to one already kept,
        so a passer-by alone in a frame does not end up among the samples."""
        self.request = request
        self.strong_similarity = float(strong_similarity)
        self.same_person = same_person
        self.clock = clock
        self.started = clock() if started is None else started
        self.kept = []        # type: List[Face]
        self.frames = 0
        self.one_face = 0
        self.several = 0
        self.other_face = 0
        self.no_usable = 0
        self.other = {}       # type: Dict[str, List[float]]  name -> similarities of strong matches
        self.refusal = None   # type: Optional[str]
        self.other_person = None  # type: Optional[str]
        self.cancelled = None  # type: Optional[str]

    # -- frames in ------------------------------------------------------------------------
    def offer(self, faces, matches=None):
        # type: (Sequence[Face], Optional[Sequence[Optional[Match]]]) -> bool
        """One frame's faces (and their matches, same order); True when a crop was kept."""
        if self.finished():
            return False
        self.frames += 1
        usable = [i for i, f in enumerate(faces) if f.quality.usable and f.embedding is not None]
        if len(usable) >= 2:
            self.several += 1
            return False
        if not usable:
            self.no_usable += 1
            return False
        self.one_face += 1
        face = faces[usable[0]]
        match = matches[usable[0]] if matches is not None else None
        if self._matches_someone_else(match):
            return False
        if not self._same_person(face):
            self.other_face += 1
            return False
        if not self._distinct(face):
            return False
        self.kept.append(face)
        return True

    def save_now(self, faces):
        # type: (Sequence[Face]) -> bool
        """Keep the current face even if it looks like one already kept (the preview's `s` key)."""
        usable = [f for f in faces if f.quality.usable and f.embedding is not None]
        if len(usable) != 1 or self.finished() or len(self.kept) >= self.request.samples:
            return False
        self.kept.append(usable[0])
        return True

    def cancel(self, reason):
        # type: (str) -> None
        self.cancelled = reason

    def _matches_someone_else(self, match):
        # type: (Optional[Match]) -> bool
        if match is None:
            return False
        for candidate in match.candidates:
            if candidate.name != self.request.name and candidate.similarity >= self.strong_similarity:
                scores = self.other.setdefault(candidate.name, [])
                scores.append(float(candidate.similarity))
                if len(scores) >= OTHER_PERSON_FRAMES and self.refusal is None:
                    self.other_person = candidate.name
                    self.refusal = ("the face in front of camera {} already matches {!r} (similarity {:.2f}, "
                                    "over {:.2f}); nothing enrolled as {!r}: if it is the same person, add "
                                    "samples to {!r} instead".format(self.request.camera, candidate.name,
                                                                     float(np.median(scores)), self.strong_similarity,
                                                                     self.request.name, candidate.name))
                return True
        return False

    def _same_person(self, face):
        # type: (Face) -> bool
        if self.same_person is None or not self.kept:
            return True
        return max(float(np.dot(face.embedding, k.embedding)) for k in self.kept) >= self.same_person

    def _distinct(self, face):
        # type: (Face) -> bool
        for kept in self.kept:
            similarity = float(np.dot(face.embedding, kept.embedding))
            turned = abs(face.quality.yaw - kept.quality.yaw) + abs(face.quality.pitch - kept.quality.pitch)
            if similarity >= MAX_SIMILARITY and turned < POSE_STEP:
                return False
        return True

    # -- state ----------------------------------------------------------------------------
    def elapsed(self):
        # type: () -> float
        return max(0.0, self.clock() - self.started)

    def finished(self):
        # type: () -> bool
        return (self.refusal is not None or self.cancelled is not None or len(self.kept) >= self.request.samples
                or self.elapsed() >= self.request.seconds)

    def progress(self):
        # type: () -> Progress
        r = self.request
        return Progress(len(self.kept), r.samples, r.min_samples, self.frames, self.one_face, self.several,
                        self.other_face,
                        self.no_usable, round(min(self.elapsed(), r.seconds), 1), r.seconds)

    def outcome(self):
        # type: () -> Outcome
        progress = self.progress()
        if self.cancelled is not None:
            return Outcome(False, [], self.cancelled, None, progress)
        if self.refusal is not None:
            return Outcome(False, [], self.refusal, self.other_person, progress)
        if len(self.kept) >= self.request.min_samples:
            samples = [Sample(crop=f.crop, embedding=f.embedding,
                              source="live:{}:{}".format(self.request.camera, i + 1)) for i, f in enumerate(self.kept)]
            return Outcome(True, samples, None, None, progress)
        return Outcome(False, [], self._shortfall(), None, progress)

    def _shortfall(self):
        # type: () -> str
        r = self.request
        where = "camera {} in {:g} s".format(r.camera, r.seconds)
        if self.frames == 0:
            return "no frames from {}: is the camera running?".format(where)
        if self.several and self.several >= self.one_face:
            return ("two or more faces were in view {} on {}: only the person to enroll may be in front of "
                    "the camera; nothing enrolled ({} distinct sample{} of the {} needed)".format(
                        "the whole time ({} frames)".format(self.several) if not self.one_face else
                        "in {} of {} frames".format(self.several, self.frames), where, len(self.kept),
                        "" if len(self.kept) == 1 else "s", r.min_samples))
        if self.one_face == 0:
            return ("no face above the quality bar in {} frames of {} (too small, blurred or turned away): come "
                    "closer, face the camera, add light; nothing enrolled".format(self.frames, where))
        return ("only {} distinct sample{} of the {} needed from {} ({} frames with one face, {} of them "
                "someone else's, {} with several): turn the head a little between frames, or allow more "
                "seconds; nothing enrolled".format(len(self.kept), "" if len(self.kept) == 1 else "s",
                                                   r.min_samples, where, self.one_face, self.other_face,
                                                   self.several))


def progress_json(progress):
    # type: (Progress) -> dict
    return dict(progress._asdict())
