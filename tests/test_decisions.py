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
