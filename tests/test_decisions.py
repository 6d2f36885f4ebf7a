import numpy as np

from edge.daemon.decisions import Observation, TrackDecision


def obs(identity, sim, quality, usable=True):
    return Observation(identity, sim, quality, usable, (0.0, 0.0, 10.0, 10.0), 0.0)


def test_one_blurred_frame_does_not_rename_the_person():
    d = TrackDecision(min_frames=3, confident_margin=0.05, threshold=0.3)
    for _ in range(3):
        d.add(obs("alice", 0.6, 0.9))
    assert d.change() == "new"
    d.add(obs("bob", 0.35, 0.2))     # low-quality misfire
    assert d.change() is None
    assert d.decision().identity == "alice"


def test_no_event_before_min_frames_and_unknown_is_null():
    d = TrackDecision(min_frames=3, threshold=0.3)
    d.add(obs(None, 0.1, 0.8))
    assert d.change() is None
    d.add(obs(None, 0.1, 0.8))
    d.add(obs(None, 0.1, 0.8))
    assert d.change() == "new"
    assert d.announced.identity is None


def test_update_when_identity_becomes_confident():
    d = TrackDecision(min_frames=2, confident_margin=0.05, threshold=0.3)
    d.add(obs(None, 0.1, 0.9, usable=False))
    d.add(obs(None, 0.1, 0.9, usable=False))
    assert d.change() is None       # nothing usable yet: not announced
    d.add(obs(None, 0.1, 0.3))
    assert d.change() == "new"
    assert d.announced.identity is None
    d.add(obs("alice", 0.7, 0.9))
    d.add(obs("alice", 0.7, 0.9))
    assert d.change() == "update"
    assert d.announced.identity == "alice" and d.announced.confident
    assert d.change() is None


def _track_names(frames, min_frames=3):
    """Every name a track would announce (new or update events) over these (identity, quality) frames."""
    d = TrackDecision(min_frames=min_frames, threshold=0.3)
    named = set()
    for identity, quality in frames:
        d.add(obs(identity, 0.5 if identity else 0.1, quality))
        if d.change() is not None and d.announced.identity is not None:
            named.add(d.announced.identity)
    return named


def _stranger_tracks(rng, tracks, frames, per_frame, lookalikes=0.0):
    """Strangers' tracks: each frame matched to one of 100 people with probability per_frame
    (independently), except a share `lookalikes` of strangers who match the same person in 80 %
    of their frames (what a frame-level false match looks like when frames are alike)."""
    named = 0
    for _ in range(tracks):
        lookalike = rng.rand() < lookalikes
        target = "p{}".format(rng.randint(100))
        seq = []
        for _ in range(frames):
            hit = rng.rand() < (0.8 if lookalike else per_frame)
            seq.append(((target if lookalike else "p{}".format(rng.randint(100))) if hit else None,
                        float(rng.uniform(0.3, 1.0))))
        named += bool(_track_names(seq))
    return named / float(tracks)


def test_a_stranger_seen_in_50_frames_does_not_get_50_chances():
    rng = np.random.RandomState(12)
    # frames independent: per-frame target 1 % -> a track is named far less often
    assert _stranger_tracks(rng, 2000, 50, 0.01) <= 0.001
    # even frames matched 10 times as often as the target: the track stays below the target
    assert _stranger_tracks(rng, 2000, 50, 0.10) <= 0.01
    # alike frames (1 % of strangers are lookalikes matched in most frames): about the target, not 50x
    assert _stranger_tracks(rng, 4000, 50, 0.01, lookalikes=0.01) <= 0.015


def test_a_majority_is_needed_to_name_a_track():
    # the old plurality rule named this stranger (bob ties with unknown): three misfires for one
    # person, the rest split
    frames = [(None, 0.9)] * 3 + [("bob", 0.9), ("bob", 0.9), ("carol", 0.9), ("bob", 0.9)]
    assert _track_names(frames) == set()
    assert _track_names([("alice", 0.9)] * 3 + [(None, 0.9)] * 3) == {"alice"}   # half is enough


def test_enrolled_people_keep_their_name():
    rng = np.random.RandomState(3)
    named = 0
    for _ in range(500):
        seq = [("alice" if rng.rand() < 0.85 else None, float(rng.uniform(0.3, 1.0))) for _ in range(30)]
        named += _track_names(seq) == {"alice"}
    assert named >= 495
