"""The per-frame recogniser on golden frames: the same frames give the same events.

tests/golden/events.json was recorded from the service before the recogniser was split out
of it (same frames, same gallery, same settings), so these tests also show that the split
changed no decision. Frames are rendered in memory (no video codec in between) and carry
their own times, so nothing here depends on the machine's speed.
"""
import itertools
import json
import os

import pytest

from edge.daemon.recognizer import FrameRecognizer, settings_from
from edge.types import Frame
from tests.support.daemon import service_config

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "events.json")
FPS = 15.0


@pytest.fixture(scope="module")
def frames(facedata):
    from edge.demo_media import render_frames, side_by_side
    from edge.imageio import read_image
    photo = lambda name: read_image(os.path.join(facedata, "known", name))
    out = render_frames([(photo("obama2.jpg"), 3.0), (photo("biden.jpg"), 3.0), (None, 1.5)], fps=FPS)
    group = side_by_side([photo("obama2.jpg"), photo("biden.jpg")])
    return out + render_frames([(group, 2.0)], fps=FPS, scale=0.6)


@pytest.fixture(scope="module")
def matcher(tmp_path_factory, pipeline, facedata):
    from edge.gallery import Gallery, Sample
    from edge.imageio import read_image
    from edge.matching import Matcher
    from edge.pipeline import largest_face
    with Gallery(str(tmp_path_factory.mktemp("g") / "gallery.db")) as gallery:
        face = largest_face(pipeline.process(read_image(os.path.join(facedata, "known", "obama.jpg"))))
        gallery.enroll("obama", [Sample(face.crop, face.embedding, "obama.jpg")], pipeline.recognizer_fingerprint)
        return Matcher.from_gallery(gallery, pipeline.recognizer_fingerprint, pipeline.threshold)


def recognizer_for(pipeline, matcher, clock, **sections):
    ids = itertools.count(1)
    config = service_config([], **sections)
    return FrameRecognizer(pipeline, settings_from(config, pipeline.threshold), matcher, clock=clock,
                           event_id=lambda: "e{}".format(next(ids)))


def run_frames(recognizer, frames, finish=True):
    """Like the loop: each frame, then the tracks lost by then; at the end, every open track."""
    results, events = [], []
    for i, image in enumerate(frames):
        frame = Frame(image=image, source="door", index=i, captured_at=1.7e9 + i / FPS, captured_mono=1000.0 + i / FPS)
        result = recognizer.recognize(frame, frame.captured_mono + 0.002)
        results.append(result)
        events.extend(result.events)
        events.extend(recognizer.end_tracks("door", frame.captured_mono))
    if finish:
        events.extend(recognizer.end_all())
    return results, events


def comparable(events):
    order = {}
    return [{"type": e.type, "track": order.setdefault(e.track_id, len(order)), "camera": e.camera,
             "identity": e.identity, "similarity": round(float(e.similarity), 4),
             "bbox": [round(float(v), 1) for v in e.bbox], "quality": round(float(e.quality), 3),
             "confident": e.confident, "frame_time": round(e.frame_time, 3), "snapshot": e.snapshot is not None}
            for e in events]


def test_golden_frames_give_the_golden_events(pipeline, matcher, frames):
    now = [0.0]
    recognizer = recognizer_for(pipeline, matcher, lambda: now[0], snapshots={"enabled": True})
    _, events = run_frames(recognizer, frames)
    with open(GOLDEN) as f:
        golden = json.load(f)
    got = comparable(events)
    assert [(e["type"], e["track"], e["identity"], e["confident"], e["frame_time"], e["snapshot"]) for e in got] == \
        [(e["type"], e["track"], e["identity"], e["confident"], e["frame_time"], e["snapshot"]) for e in golden]
    for mine, theirs in zip(got, golden):     # numbers: within what ONNX Runtime versions differ by
        assert abs(mine["similarity"] - theirs["similarity"]) < 0.02
        assert abs(mine["quality"] - theirs["quality"]) < 0.02
        assert max(abs(a - b) for a, b in zip(mine["bbox"], theirs["bbox"])) < 3.0
    assert [e.event_id for e in events] == ["e{}".format(i) for i in range(1, len(events) + 1)]


def test_a_frame_gives_faces_tracks_and_stage_times(pipeline, matcher, frames):
    now = [1000.0 + 2 / FPS + 0.05]          # the clock when events are built
    recognizer = recognizer_for(pipeline, matcher, lambda: now[0])
    results, _ = run_frames(recognizer, frames[:3])
    third = results[2]
    assert len(third.faces) == 1 and len(third.track_ids) == 1 and third.identities == ["obama"]
    assert results[0].track_ids == third.track_ids       # one face, one track
    new = third.events[0]
    assert new.type == "new" and new.identity == "obama" and new.snapshot is None     # snapshots off by default
    assert set(third.stages_ms) == {"capture", "detect", "align", "embed", "match"}
    assert third.stages_ms["capture"] == pytest.approx(2.0)
    # total = the recogniser's clock - capture: 50 ms here, whatever the machine's speed
    assert new.latency.total == pytest.approx(50.0)


def test_the_snapshot_is_encoded_once_per_best_face(pipeline, matcher, frames, monkeypatch):
    import cv2
    encoded = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a: encoded.append(a[0]) or real(*a))
    recognizer = recognizer_for(pipeline, matcher, lambda: 0.0, snapshots={"enabled": True})
    _, events = run_frames(recognizer, frames[:10], finish=False)
    assert [e.type for e in events] == ["new"] and events[0].snapshot
    decision = recognizer.decisions[events[0].track_id]
    first = recognizer._snapshot(decision)
    count = encoded.count(".jpg")
    # every later event of the track (update, end) reuses it until a better face comes
    assert recognizer._snapshot(decision) is first and recognizer._snapshot(decision) is first
    assert encoded.count(".jpg") == count
    decision.keep_image(decision.best_image.copy())
    assert recognizer._snapshot(decision) == first and encoded.count(".jpg") == count + 1
