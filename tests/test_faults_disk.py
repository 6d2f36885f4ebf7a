"""Disk full while the daemon writes the gallery or the event queue.

The fault: `PRAGMA max_page_count` on the daemon's own connection to each database, set to the
pages it has. SQLite then fails a write that needs a new page with SQLITE_FULL ("database or
disk is full"), the same error, through the same code paths, as ENOSPC from the file system;
raising the limit again is "space returns". The daemon runs in this process (build_service, as
`faceedge run` builds it) so the test can reach those connections."""
import base64
import json
import logging
import sqlite3
import threading
import time

from edge.commands.daemon import build_service
from edge.daemon.config import load_config
from tests.broker import Broker, Subscriber
from tests.faults import last_stats, record_figure, stats_bodies, wait_until
from tests.media import known, photo_video
from tests.support.daemon import RecordingNotifier, write_config

ROOT = "fe/testcam"


def _limit_pages(db, lock, full):
    with lock:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute("PRAGMA max_page_count={}".format(pages if full else 1073741823))


def _enroll(facedata, request_id):
    with open(known(facedata, "obama.jpg"), "rb") as f:
        image = base64.b64encode(f.read()).decode("ascii")
    return json.dumps({"request_id": request_id, "action": "enroll", "name": "obama", "images": [image]})


def test_disk_full_gallery_and_queue_clear_errors_nothing_corrupted_then_recovery(tmp_path, facedata, model_dir,
                                                                                  caplog):
    broker = Broker(tmp_path / "mosquitto")
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=0.6, fps=10.0,
                        blank_s=0.6)
    config = load_config(write_config(
        str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"), broker.port,
        [{"name": "door", "source": video, "type": "file", "loop": True}],
        extra={"recognition": {"track_timeout_s": 0.3}}))
    service = build_service(config, notifier=RecordingNotifier())
    runner = threading.Thread(target=service.run)
    sub = Subscriber(broker.port, [ROOT + "/#"], client_id="disk-full", clean_session=False)
    gallery, outbox = service.gallery, service.publisher.outbox
    caplog.set_level(logging.WARNING)
    runner.start()
    try:
        sub.wait_for(ROOT + "/events", timeout=120)

        # -- the gallery's disk is full: the command is refused, clearly, and changes nothing
        before = gallery.summary()
        _limit_pages(gallery._db, gallery._lock, True)
        sub.publish(ROOT + "/gallery/set", _enroll(facedata, "full-1"))
        refused = sub.wait_json(ROOT + "/gallery/response", lambda r: r["request_id"] == "full-1")
        assert refused["ok"] is False and "disk is full" in refused["error"] and gallery.path in refused["error"]
        assert "free space" in refused["error"]
        assert any("full-1" in r.getMessage() and "disk is full" in r.getMessage() for r in caplog.records)
        assert gallery.summary() == before and gallery.integrity_check() == "ok"
        _limit_pages(gallery._db, gallery._lock, False)             # space returns
        freed = time.monotonic()
        sub.publish(ROOT + "/gallery/set", _enroll(facedata, "full-1"))      # the client retries
        done = sub.wait_json(ROOT + "/gallery/response", lambda r: r["request_id"] == "full-1" and r["ok"])
        gallery_recovery_s = time.monotonic() - freed
        assert done["result"]["added"] == 1 and [p.samples for p in gallery.list_people()] == [1]

        # -- the queue's disk fills during a broker outage: events that cannot be stored are
        # counted and logged; capture goes on; what was stored is delivered afterwards
        broker.stop(kill=True)
        _limit_pages(outbox._db, outbox._lock, True)
        frames = service.counters.processed
        wait_until(lambda: outbox.write_failures >= 2, 90, "the queue to fill")
        assert service.counters.processed > frames                         # recognition did not stop
        stored = outbox.depth
        _limit_pages(outbox._db, outbox._lock, False)
        freed_mono, freed_wall = time.monotonic(), time.time()
        broker.start()
        seen = len(stats_bodies(sub))
        after = last_stats(sub, lambda s: s["outbox"]["connected"] and s["outbox"]["depth"] == 0, limit=90,
                           after_count=seen)
        # new events flow again once space returned
        wait_until(lambda: any(e["frame_time"] > freed_wall for e in sub.json(ROOT + "/events")), 60,
                   "an event produced after space returned")
        queue_recovery_s = time.monotonic() - freed_mono
        failures = outbox.write_failures
    finally:
        service.request_stop()
        runner.join(60)
        sub.close()
        broker.stop()
    assert not runner.is_alive()
    assert after["outbox"]["write_failures"] >= 2 and after["outbox"]["dropped"] == 0
    assert stored >= 1
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("could not queue an event" in m and "disk is full" in m for m in messages)
    for path in (gallery.path, outbox.path):
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    record_figure("disk_full", gallery_recovery_s=round(gallery_recovery_s, 1), queue_write_failures=failures,
                  queued_before_full=stored, queue_recovery_s=round(queue_recovery_s, 1))
