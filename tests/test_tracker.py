import json

from edge.daemon.decisions import Observation, TrackDecision
from edge.daemon.events import ZERO_LATENCY, Event
from edge.daemon.latency import RollingStats
from edge.daemon.tracker import Tracker, iou


def obs(identity, sim=0.8, quality=0.9, usable=True):
    return Observation(identity, sim, quality, usable, (0, 0, 10, 10), 1.0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_tracker_follows_moving_box_and_separates_faces():
    t = Tracker("cam", iou_threshold=0.3, timeout_s=1.0)
    a, _ = t.update([(0, 0, 100, 100), (300, 0, 400, 100)], 0.0)
    b, _ = t.update([(310, 5, 410, 105), (20, 0, 120, 100)], 0.1)
    assert [x.track_id for x in b] == [a[1].track_id, a[0].track_id]
    # fast move: no overlap, but the centre is close
    c, _ = t.update([(60, 0, 160, 100)], 0.2)
    assert c[0].track_id == a[0].track_id


def test_tracker_reach_grows_with_the_gap_between_frames():
    # One box width of movement: a new face 0.05 s later, the same face 0.5 s later
    # (frames were dropped while inference fell behind).
    t = Tracker("cam", timeout_s=1.0)
    a, _ = t.update([(0, 0, 100, 100)], 0.0)
    b, _ = t.update([(100, 0, 200, 100)], 0.05)
    assert b[0].track_id != a[0].track_id
    t = Tracker("cam", timeout_s=1.0)
    a, _ = t.update([(0, 0, 100, 100)], 0.0)
    b, _ = t.update([(100, 0, 200, 100)], 0.5)
    assert b[0].track_id == a[0].track_id
    # never further than twice the allowance
    c, _ = t.update([(260, 0, 360, 100)], 1.0)
    assert c[0].track_id != a[0].track_id


def test_tracker_ends_after_timeout():
    t = Tracker("cam", timeout_s=1.0)
    a, _ = t.update([(0, 0, 100, 100)], 0.0)
    _, ended = t.update([], 0.5)
    assert ended == []
    _, ended = t.update([], 1.6)
    assert [x.track_id for x in ended] == [a[0].track_id]
    b, _ = t.update([(0, 0, 100, 100)], 1.7)
    assert b[0].track_id != a[0].track_id


def test_decision_one_blurred_frame_does_not_rename():
    d = TrackDecision(min_frames=3, confident_margin=0.05, threshold=0.4)
    kinds = []
    for o in [obs("obama"), obs("biden", 0.45, quality=0.2), obs("obama"), obs("obama"), obs("obama")]:
        d.add(o)
        kinds.append(d.change())
    assert kinds[:2] == [None, None]
    assert kinds[2] == "new"
    assert d.announced.identity == "obama"
    assert all(k is None or d.announced.identity == "obama" for k in kinds)


def test_decision_not_named_before_min_frames_then_update():
    d = TrackDecision(min_frames=3, threshold=0.4)
    d.add(obs("obama", usable=False))
    d.add(obs(None, 0.1, quality=0.3))
    d.add(obs("obama"))
    assert d.change() == "new"
    assert d.announced.identity is None
    d.add(obs("obama"))
    d.add(obs("obama"))
    assert d.change() == "update"
    assert d.announced.identity == "obama" and d.announced.confident
    d.add(obs("obama"))
    assert d.change() is None


def test_a_track_without_a_usable_face_is_never_announced():
    d = TrackDecision(min_frames=3, threshold=0.4)
    for _ in range(10):
        d.add(obs(None, 0.0, quality=0.1, usable=False))
        assert d.change() is None
    d.add(obs(None, 0.1, quality=0.5))
    assert d.change() == "new" and d.announced.identity is None


def test_unknown_face_is_announced_as_none():
    d = TrackDecision(min_frames=2, threshold=0.4)
    for _ in range(4):
        d.add(obs(None, 0.1))
    assert d.change() == "new"
    assert d.announced.identity is None and d.announced.confident


def test_event_json_fields():
    e = Event("new", "ab", "cam-1", "cam", None, 0.5, (1, 2, 3, 4), 0.7, 1700000000.5, False, ZERO_LATENCY)
    d = json.loads(e.to_json())
    assert d["identity"] is None and d["bbox"] == [1, 2, 3, 4]
    assert d["timestamp"] == "2023-11-14T22:13:20.500Z"
    assert set(d["latency_ms"]) == {"capture", "detect", "align", "embed", "match", "publish", "total"}
    assert "snapshot" not in d


def test_rolling_stats():
    s = RollingStats(window=100)
    for v in range(1, 101):
        s.add("detect", v)
    summary = s.summary()["detect"]
    assert summary["median"] in (50.0, 51.0) and summary["p95"] == 95.0
