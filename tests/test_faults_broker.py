"""Broker faults against the real daemon, a real mosquitto and the real models."""
import json
import os
import time

import numpy as np

from edge.gallery import Gallery
from tests.broker import Broker, Subscriber
from tests.faults import Daemon, last_stats, produced_events, record_figure, stats_bodies, wait_until
from tests.media import known, photo_video
from tests.support.daemon import write_config

ROOT = "fe/testcam"
# Outlasts paho's reconnect backoff steps (1, 2, 4, 8 s, capped at 10 s) and the in-flight window.
OUTAGE_S = 30.0


def _event_ids(sub):
    ids = []
    for body in sub.json(ROOT + "/events"):
        ids.append(body["event_id"])
    return ids


def _db_bytes(directory):
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)
               if n.startswith("outbox.db"))


def test_events_produced_during_a_broker_sigkill_are_all_delivered(tmp_path, facedata, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    # A face for 1 s, then 1 s of empty scene, looped: a new track (new ... end) every 2 s.
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=1.0, fps=10.0,
                        blank_s=1.0)
    capacity = 2000
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}],
                          extra={"recognition": {"track_timeout_s": 0.3},
                                 "mqtt": {"queue_max_events": capacity}})
    # A persistent session: the broker keeps what the daemon sends before this test client is back.
    sub = Subscriber(broker.port, [ROOT + "/events", ROOT + "/stats"], client_id="outage-collector",
                     clean_session=False)
    sub.client.reconnect_delay_set(1, 1)     # the test's client must not be what delays delivery
    daemon = Daemon(config).start()
    try:
        sub.wait_for(ROOT + "/events", count=4, timeout=120)
        before = last_stats(sub, lambda s: s["outbox"]["connected"])
        time.sleep(1.5)     # let the broker's autosave (1 s) store the collector's session
        killed, killed_wall = time.monotonic(), time.time()
        broker.stop(kill=True)
        queue_dir = str(tmp_path / "queue")
        peak_bytes = 0
        while time.monotonic() - killed < OUTAGE_S:
            peak_bytes = max(peak_bytes, _db_bytes(queue_dir))
            time.sleep(0.5)
        restarted, restarted_wall = time.monotonic(), time.time()
        watchdogs_in_outage = len(daemon.watchdogs(killed, restarted))
        broker.start()
        seen = len(stats_bodies(sub))
        after = last_stats(sub, lambda s: s["outbox"]["connected"] and s["outbox"]["depth"] == 0,
                           limit=90, after_count=seen)
        recovered = time.monotonic()
        assert daemon.stop() == 0, daemon.log()[-3000:]
        produced = produced_events(daemon.log())
        wait_until(lambda: len(set(_event_ids(sub))) >= produced, 30, "every event")
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
    ids = _event_ids(sub)
    # frame_time: when the frame that made the event was captured (wall clock)
    produced_in_outage = len(set(e["event_id"] for e in sub.json(ROOT + "/events")
                                 if killed_wall <= e["frame_time"] <= restarted_wall))
    frames_in_outage = after["processed_frames"] - before["processed_frames"]
    fps_before = before["processed_fps"]
    record_figure("broker_outage", outage_s=OUTAGE_S, produced=produced, delivered=len(set(ids)),
                  duplicates=len(ids) - len(set(ids)), produced_during_outage=produced_in_outage,
                  frames_during_outage=frames_in_outage, fps_before=fps_before,
                  peak_queue_bytes=peak_bytes, dropped=after["outbox"]["dropped"],
                  recovery_s=round(recovered - restarted, 1), watchdogs_during_outage=watchdogs_in_outage)
    assert produced_in_outage >= 3                     # events really were produced meanwhile
    assert after["outbox"]["dropped"] == 0
    assert len(set(ids)) == produced                   # every event produced arrived (at least once)
    assert not [e for e in sub.json(ROOT + "/events") if "snapshot" in e]   # no face leaves unless enabled
    # Capture and inference went on: frames processed during the outage at the usual pace...
    assert frames_in_outage >= 0.5 * fps_before * OUTAGE_S
    # ...so the watchdog (fed only by processed frames) kept coming.
    assert watchdogs_in_outage >= OUTAGE_S / daemon.watchdog_s
    # The queue on disk stayed small: well under its bound of `capacity` events (~1 kB each).
    assert peak_bytes < 4 * 1024 * 1024


def _enroll(i, vector):
    return json.dumps({"request_id": "cmd-{}".format(i), "action": "enroll", "name": "person-{}".format(i),
                       "embeddings": [vector], "fingerprint": "fp-test"}).encode("utf-8")


def test_gallery_commands_across_a_broker_restart_are_applied_at_most_once(tmp_path, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    gallery_path = str(tmp_path / "g.db")
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery_path, broker.port, [])
    daemon = Daemon(config).start()
    sub = Subscriber(broker.port, [ROOT + "/gallery/response", ROOT + "/available"], client_id="commander",
                     clean_session=False)
    sub.client.reconnect_delay_set(1, 1)
    rng = np.random.RandomState(1)
    count = 60
    payloads = [_enroll(i, rng.randn(128).round(5).tolist()) for i in range(count)]
    try:
        daemon.wait_online(sub)
        half = count // 2
        for payload in payloads[:half]:
            sub.client.publish(ROOT + "/gallery/set", payload, qos=1)    # not waited for: in flight
        wait_until(lambda: len(sub.json(ROOT + "/gallery/response")) >= 5, 60, "the first answers")
        broker.stop(kill=True)                 # with the rest of the first half still in flight
        applied_before = len(sub.json(ROOT + "/gallery/response"))
        for payload in payloads[half:]:        # sent while the broker is down: queued by the client
            sub.client.publish(ROOT + "/gallery/set", payload, qos=1)
        broker.start()
        # The client's side of the contract: re-send, with the same request_id, what was not answered.
        retries = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answered = set(r["request_id"] for r in sub.json(ROOT + "/gallery/response"))
            missing = [i for i in range(count) if "cmd-{}".format(i) not in answered]
            if not missing:
                break
            time.sleep(3.0)
            answered = set(r["request_id"] for r in sub.json(ROOT + "/gallery/response"))
            for i in missing:
                if "cmd-{}".format(i) not in answered:
                    retries += 1
                    sub.client.publish(ROOT + "/gallery/set", payloads[i], qos=1)
        # and once more for all of them: a repeat must change nothing
        for payload in payloads:
            sub.publish(ROOT + "/gallery/set", payload)
        wait_until(lambda: len(sub.json(ROOT + "/gallery/response")) >= count * 2, 60, "the repeated answers")
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
    responses = {}
    for r in sub.json(ROOT + "/gallery/response"):
        responses.setdefault(r["request_id"], []).append(r)
    assert sorted(responses) == sorted("cmd-{}".format(i) for i in range(count))
    for request_id, answers in responses.items():
        assert all(a == answers[0] for a in answers) and answers[0]["ok"], answers
    with Gallery(gallery_path) as g:
        people = g.list_people()
        version = g.version
        assert g.integrity_check() == "ok"
    assert sorted(p.name for p in people) == sorted("person-{}".format(i) for i in range(count))
    assert all(p.samples == 1 for p in people)          # none applied twice...
    assert version == count                             # ...and no change made twice
    record_figure("commands_across_restart", commands=count, answered_before_kill=applied_before,
                  retried=retries, applied=len(people), gallery_version=version,
                  applied_twice=sum(1 for p in people if p.samples > 1),
                  answers=sum(len(a) for a in responses.values()))
