"""The daemon (`python -m edge run`) on a live RTSP stream from the real GStreamer RTSP server.

Back-end `auto`: FFmpeg with pip's OpenCV, GStreamer (rtspsrc ! ... ! avdec_h264) in the Debian
venv (run-tests.sh runs this file in both).
"""
import json
import time

import pytest

from tests.broker import Broker, Subscriber
from tests.cli import faceedge
from tests.faults import Daemon, last_stats, record_figure, stats_bodies, wait_until
from tests.media import known
from tests.rtsp import RtspServer, SilentServer, gst_python
from tests.support.daemon import write_config

ROOT = "fe/testcam"
USER, SECRET = "admin", "s3cret-pw"


@pytest.fixture(scope="module")
def face_frames(tmp_path_factory, facedata):
    from edge.demo_media import render_frames, write_frames
    from edge.imageio import read_image
    directory = str(tmp_path_factory.mktemp("frames"))
    write_frames(directory, render_frames([(read_image(known(facedata, "obama2.jpg")), 4.0)], fps=10.0))
    return directory


def _events(sub, after=0):
    return [json.loads(p) for p in sub.payloads(ROOT + "/events")][after:]


def _door(stats):
    return stats["cameras"]["door"]


def test_daemon_on_rtsp_recognises_loses_the_server_and_recovers(tmp_path, face_frames, gallery, facedata,
                                                                model_dir):
    server = RtspServer(face_frames, user=USER, password=SECRET).start()
    broker = Broker(tmp_path / "mosquitto")
    url = server.url("door", USER, SECRET)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery.path, broker.port,
                          [{"name": "door", "source": url, "type": "rtsp", "latency_ms": 100,
                            "read_timeout_s": 2.0, "open_timeout_s": 4.0, "reconnect_max_s": 1.0}])
    gallery.close()
    sub = Subscriber(broker.port, [ROOT + "/#"])
    daemon = Daemon(config).start()
    try:
        wait_until(lambda: any(e["identity"] == "obama" for e in _events(sub)), 120, "obama recognised")
        up = last_stats(sub, lambda s: _door(s)["state"] == "open" and _door(s)["frames"] > 10)
        daemon.wait_notify("WATCHDOG=1", after=time.monotonic())
        server.stop()                    # killed mid-stream
        stopped = time.monotonic()
        seen = len(stats_bodies(sub))
        lost = last_stats(sub, lambda s: _door(s)["state"] == "reconnecting", after_count=seen, limit=30)
        lost_after_s = time.monotonic() - stopped
        wait_until(lambda: any(e["type"] == "end" for e in _events(sub)), 30, "the open track's end event")
        time.sleep(2 * daemon.watchdog_s + 1.0)       # the staleness window, then silence
        quiet_from = time.monotonic()
        time.sleep(3.0)
        quiet_to = time.monotonic()
        before = len(_events(sub))
        server.start()                   # same port: the daemon must find it again by itself
        restarted = time.monotonic()
        wait_until(lambda: any(e["identity"] == "obama" and e["type"] == "new" for e in _events(sub, before)),
                   120, "obama recognised again after the server came back")
        recovered_s = time.monotonic() - restarted
        back = last_stats(sub, lambda s: _door(s)["state"] == "open", after_count=len(stats_bodies(sub)))
        fed_again = daemon.wait_notify("WATCHDOG=1", after=restarted, limit=30)   # fed again, not just alive
        assert daemon.alive()
        assert daemon.stop() == 0
        log = daemon.log()
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
        server.stop()
    assert lost_after_s < 2.0 + 2.0 + 2.0, lost_after_s      # read bound + probe + stats interval
    assert daemon.watchdogs(quiet_from, quiet_to) == []
    assert fed_again >= restarted
    assert "not feeding the watchdog" in log
    assert _door(lost)["error"] and _door(back)["reconnects"] >= 1
    assert _door(up)["backend"] in ("ffmpeg", "gstreamer")
    assert _door(up)["decoder"] == ("avdec_h264" if _door(up)["backend"] == "gstreamer" else None)
    assert "camera door: rtsp source via {}".format(_door(up)["backend"]) in log      # the choice, logged once
    assert recovered_s < 60
    # the credentials never leave the config: not in the log, the stats or any message
    everything = log + "".join(p.decode("utf-8", "replace") for _, p, _ in sub.messages)
    assert SECRET not in everything and "***@127.0.0.1" in log
    record_figure("rtsp_server_lost", backend=_door(up)["backend"], reconnecting_after_s=round(lost_after_s, 1),
                  recognised_again_after_s=round(recovered_s, 1))


def test_daemon_reports_stalled_missing_unauthorised_and_silent_streams(tmp_path, face_frames, model_dir):
    stalling = RtspServer(face_frames).start()
    secured = RtspServer(face_frames, user=USER, password=SECRET).start()
    silent = SilentServer()
    broker = Broker(tmp_path / "mosquitto")
    # FFmpeg's open probes the stream for ~3 s: open_timeout_s leaves room for it
    timeouts = {"type": "rtsp", "read_timeout_s": 2.0, "open_timeout_s": 6.0, "reconnect_max_s": 4.0}
    cameras = [dict(timeouts, name="stall", source=stalling.url("door")),
               dict(timeouts, name="nopath", source=secured.url("nope", USER, SECRET)),
               dict(timeouts, name="badpw", source=secured.url("door", USER, "wrong-pw")),
               dict(timeouts, name="silent", source="rtsp://127.0.0.1:{}/door".format(silent.port))]
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, cameras)
    sub = Subscriber(broker.port, [ROOT + "/stats"])
    daemon = Daemon(config).start()
    began = time.monotonic()
    try:
        last_stats(sub, lambda s: s["cameras"]["stall"]["frames"] > 5, limit=120)
        stalling.pause()
        paused = time.monotonic()
        seen = len(stats_bodies(sub))
        last_stats(sub, lambda s: s["cameras"]["stall"]["state"] == "reconnecting", limit=30, after_count=seen)
        stall_s = time.monotonic() - paused
        final = last_stats(sub, lambda s: s["cameras"]["stall"]["state"] == "reconnecting" and all(
            s["cameras"][n]["reconnects"] >= 2 for n in ("nopath", "badpw", "silent")), limit=90, after_count=seen)
        elapsed = time.monotonic() - began
        assert daemon.alive()
        code = daemon.stop()
        log = daemon.log()
        assert code == 0, log[-3000:]
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
        silent.close()
        secured.stop()
        stalling.stop()
    errors = dict((n, final["cameras"][n]["error"] or "") for n in ("stall", "nopath", "badpw", "silent"))
    assert "(stream stalled)" in errors["stall"] or "no answer from" in errors["stall"], errors
    assert "404 Not Found: no stream at path /nope" in errors["nopath"]
    assert "401 Unauthorized: wrong user name or password" in errors["badpw"]
    assert "no answer from 127.0.0.1:{} within".format(silent.port) in errors["silent"]
    assert stall_s < 2.0 + 2.0 + 2.0, stall_s      # read bound (or FFmpeg's + probe) + stats interval
    record_figure("rtsp_stalled", reconnecting_after_s=round(stall_s, 1),
                  reconnects=dict((n, final["cameras"][n]["reconnects"]) for n in errors))
    for name, error in errors.items():
        assert error in log.replace("; retrying", "\n"), name     # the same clear line in the log
    # backoff (0.5, 1, 2, then every reconnect_max_s = 4 s at most): a few attempts, not a busy loop
    assert all(final["cameras"][n]["reconnects"] <= 4 + elapsed / 4.0 for n in errors), (elapsed, final["cameras"])
    assert SECRET not in log and "wrong-pw" not in log and "wrong-pw" not in json.dumps(final)


def test_bench_live_rtsp_measures_the_stream(model_dir):
    gst_python()       # the bench starts the same server
    code, out, err = faceedge("bench", "--live", "8", "--rtsp", "--latency-ms", "100", "--json",
                              "--model-dir", model_dir, "--backend", "onnxruntime")
    assert code == 0, err
    report = json.loads(out)
    assert report["video"]["source"] == "rtsp" and "Yao Ming" in report["identities"]
    assert report["subscriber_latency_ms"]["n"] > 0
    rtsp = report["rtsp"]
    ages = rtsp["frame_age_ms"]
    assert ages["ffmpeg"]["n"] > 20 and 0 < ages["ffmpeg"]["median"] < 2000
    if rtsp["daemon_backend"] == "gstreamer":
        assert rtsp["decoder"] == "avdec_h264"
        assert ages["gstreamer latency_ms=0"]["n"] > 20 and ages["gstreamer latency_ms=100"]["n"] > 20
    else:
        assert rtsp["daemon_backend"] == "ffmpeg" and list(ages) == ["ffmpeg"]


def test_daemon_stops_cleanly_with_a_capture_thread_still_inside_opencv(tmp_path, model_dir):
    """An open that hangs past the stop (a camera that accepts and never answers) leaves its capture
    thread inside OpenCV; the daemon must not run Python's shutdown under it (a thread returning
    from C++ then is ended by pthread_exit and the process aborts: exit -6 in CI once)."""
    silent = SilentServer()
    broker = Broker(tmp_path / "mosquitto")
    cameras = [{"name": "hung", "type": "rtsp", "source": "rtsp://127.0.0.1:{}/door".format(silent.port),
                "open_timeout_s": 60.0, "read_timeout_s": 2.0}]
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, cameras)
    sub = Subscriber(broker.port, [ROOT + "/available"])
    daemon = Daemon(config).start()
    try:
        daemon.wait_online(sub)
        wait_until(lambda: "camera hung: rtsp source via" in daemon.log(), 60, "the camera's open to begin")
        time.sleep(1.0)
        stopping = time.monotonic()
        code = daemon.stop()
        stop_s = time.monotonic() - stopping
        log = daemon.log()
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
        silent.close()
    assert code == 0, log[-3000:]
    assert "1 capture thread(s) still inside OpenCV" in log
    assert "stopped: 0 frames processed" in log
    assert stop_s < 30, stop_s
