"""The daemon SIGKILLed during a storm of enrollments over MQTT, then restarted."""
import json
import time

import numpy as np

from edge.gallery import Gallery
from tests.broker import Broker, Subscriber
from tests.faults import Daemon, record_figure, wait_until
from tests.support.daemon import write_config

ROOT = "fe/testcam"
STORM = 200


def _answered(sub):
    return dict((r["request_id"], r) for r in sub.json(ROOT + "/gallery/response"))


def test_sigkill_during_200_enrollments_keeps_every_acknowledged_one(tmp_path, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    gallery_path = str(tmp_path / "g.db")
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery_path, broker.port, [])
    rng = np.random.RandomState(2)
    payloads = dict(("storm-{}".format(i), json.dumps({
        "request_id": "storm-{}".format(i), "action": "enroll", "name": "person-{:03d}".format(i),
        "embeddings": [rng.randn(128).round(5).tolist()], "fingerprint": "fp-test"}).encode("utf-8"))
        for i in range(STORM))
    sub = Subscriber(broker.port, [ROOT + "/gallery/response", ROOT + "/available"], client_id="storm",
                     clean_session=False)
    daemon = Daemon(config).start()
    try:
        daemon.wait_online(sub)
        for payload in payloads.values():
            sub.client.publish(ROOT + "/gallery/set", payload, qos=1)
        wait_until(lambda: len(_answered(sub)) >= STORM // 4, 60, "a quarter of the answers")
        daemon.kill()
        killed = time.monotonic()
        time.sleep(0.3)              # answers already on their way through the broker
        acked = set(r for r, body in _answered(sub).items() if body["ok"])
        with Gallery(gallery_path) as g:
            integrity = g.integrity_check()
            present = set(p.name for p in g.list_people())
            samples = [p.samples for p in g.list_people()]
        assert integrity == "ok"
        assert 0 < len(acked) < STORM       # killed mid-storm
        assert set("person-" + r.split("-")[1].zfill(3) for r in acked) <= present
        assert all(n == 1 for n in samples)

        # Restarted: the broker hands over what was queued for the daemon's persistent session;
        # the client re-sends whatever was not answered, with the same request ids.
        daemon = Daemon(config).start()
        restart_mono = time.monotonic()
        daemon.wait_online(sub, count=2)
        back_s = time.monotonic() - killed
        for _ in range(20):
            missing = [r for r in payloads if r not in _answered(sub)]
            if not missing:
                break
            for r in missing:
                sub.client.publish(ROOT + "/gallery/set", payloads[r], qos=1)
            time.sleep(2.0)
        answers = _answered(sub)
        assert sorted(answers) == sorted(payloads) and all(a["ok"] for a in answers.values())
        done_s = time.monotonic() - restart_mono
        late = Subscriber(broker.port, [ROOT + "/gallery/state"])
        state = json.loads(late.wait_for(ROOT + "/gallery/state",
                                         lambda p: json.loads(p.decode())["people"] == STORM)[-1].decode())
        late.close()
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
    with Gallery(gallery_path) as g:
        assert g.integrity_check() == "ok"
        people = g.list_people()
        summary = g.summary()
    assert len(people) == STORM and all(p.samples == 1 for p in people)      # none applied twice
    assert state["names"] == [p.name for p in people] and state["version"] == summary.version
    record_figure("enroll_storm_sigkill", commands=STORM, acknowledged_before_kill=len(acked),
                  present_after_kill=len(present), acknowledged_missing=len(
                      set("person-" + r.split("-")[1].zfill(3) for r in acked) - present),
                  applied_not_acknowledged=len(present) - len(acked), integrity=integrity,
                  restart_to_online_s=round(back_s, 1), all_answered_after_restart_s=round(done_s, 1))
