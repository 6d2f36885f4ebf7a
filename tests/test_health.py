"""Issue 13, overload and health: `<root>/health` (retained) and stats.health say what the
numbers alone do not: a camera gone, a camera whose frames are mostly dropped, frames failing."""
import logging
import threading
import time

from edge.daemon.health import ALARM_INTERVALS, Health
from edge.gallery import Gallery
from tests.media import known, photo_video
from tests.support.daemon import RecordingPublisher, make_service, service_config


def _cam(state, frames, dropped, error=None):
    return {"state": state, "frames": frames, "dropped": dropped, "error": error}


def test_a_camera_behind_for_several_intervals_degrades_health_and_is_logged_once(caplog):
    health = Health()
    frames = dropped = 0
    states = []
    with caplog.at_level(logging.INFO, logger="faceedge.service"):
        for interval in range(ALARM_INTERVALS + 3):
            frames, dropped = frames + 300, dropped + 170      # 57 % dropped: 8 cameras on 2 cores
            report, _ = health.assess({"door": _cam("open", frames, dropped), "yard": _cam("open", 300 * (interval + 1), 0)})
            states.append(report["state"])
        assert states[:ALARM_INTERVALS] == ["ok"] * ALARM_INTERVALS      # one burst is no overload
        assert states[ALARM_INTERVALS:] == ["degraded"] * 3
        assert report["cameras"] == {"door": "overloaded", "yard": "open"}
        assert "camera door: most frames dropped" in report["reasons"][0]
        for _ in range(2):
            frames += 300
            report, _ = health.assess({"door": _cam("open", frames, dropped), "yard": _cam("open", 0, 0)})
        assert report["state"] == "ok" and report["cameras"]["door"] == "open"
    said = [r.getMessage() for r in caplog.records if "intervals in a row" in r.getMessage()]
    assert len(said) == 1 and "door" in said[0]
    assert any("keeps up again" in r.getMessage() for r in caplog.records)


def test_no_camera_delivering_and_other_problems():
    health = Health()
    report, changed = health.assess({"door": _cam("reconnecting", 0, 0, "stream stopped")})
    assert changed and report == {"state": "no_camera", "cameras": {"door": "reconnecting"},
                                  "reasons": ["camera door: stream stopped"]}
    report, changed = health.assess({"door": _cam("open", 10, 0)}, problem="the MQTT outbox sender has stopped")
    assert changed and report["state"] == "degraded" and report["reasons"] == ["the MQTT outbox sender has stopped"]
    report, _ = health.assess({"door": _cam("open", 20, 0)}, frame_errors=3)
    assert report["state"] == "degraded" and "3 frame(s) failed" in report["reasons"][0]
    report, changed = health.assess({})          # no camera configured: serving commands is its job
    assert report["state"] == "ok"


def test_the_daemon_publishes_each_cameras_state_in_its_health(tmp_path, facedata, pipeline):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama.jpg")], seconds=2.0, fps=10.0)
    config = service_config([{"name": "door", "source": video, "type": "file", "loop": True},
                             {"name": "garage", "source": "/dev/video57", "type": "v4l2"}],
                            mqtt={"stats_interval_s": 0.5})
    publisher = RecordingPublisher()
    gallery = Gallery(str(tmp_path / "g.db"))
    service = make_service(config, pipeline, gallery, publisher=publisher, max_seconds=60)
    runner = threading.Thread(target=service.run)
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [h for h in publisher.health
                                                    if h["cameras"].get("door") == "open"]:
            time.sleep(0.1)
        report = [h for h in publisher.health if h["cameras"].get("door") == "open"][-1]
        assert report["state"] == "degraded" and report["cameras"]["garage"] in ("reconnecting", "failed")
        assert any(r.startswith("camera garage") for r in report["reasons"])
        assert publisher.stats[-1]["health"]["cameras"]["door"] == "open"
    finally:
        service.request_stop()
        runner.join(60)
        gallery.close()
