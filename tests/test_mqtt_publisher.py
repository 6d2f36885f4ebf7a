import json
import os
import signal
import subprocess
import sys
import time

from edge.daemon.publisher import Publisher
from tests.broker import Broker, Subscriber, free_port
from tests.support.daemon import make_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_available_online_then_offline_on_clean_stop(broker, tmp_path):
    sub = Subscriber(broker.port, ["faceedge/door/#"])
    pub = Publisher(make_config(broker.port, tmp_path))
    pub.start()
    sub.wait_for("faceedge/door/available", lambda p: p == b"online")
    pub.stop()
    sub.wait_for("faceedge/door/available", lambda p: p == b"offline")
    # retained: a late subscriber sees offline
    late = Subscriber(broker.port, ["faceedge/door/available"])
    assert late.wait_for("faceedge/door/available")[-1] == b"offline"


def test_last_will_when_the_process_dies(broker, tmp_path):
    sub = Subscriber(broker.port, ["faceedge/door/available"])
    script = ("import sys, time; sys.path.insert(0, {!r})\n"
              "from tests.support.daemon import make_config\n"
              "from edge.daemon.publisher import Publisher\n"
              "import pathlib; p = Publisher(make_config({}, pathlib.Path({!r}), keepalive=5)); p.start()\n"
              "time.sleep(60)\n").format(REPO, broker.port, str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        sub.wait_for("faceedge/door/available", lambda p: p == b"online")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sub.wait_for("faceedge/door/available", lambda p: p == b"offline", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_events_in_order_and_every_one_delivered_across_a_broker_outage(tmp_path):
    broker = Broker(tmp_path / "b")
    try:
        sub = Subscriber(broker.port, ["faceedge/door/events"], client_id="outage-sub")
        pub = Publisher(make_config(broker.port, tmp_path))
        pub.start()
        for i in range(20):
            pub.publish_event(json.dumps({"n": i}))
        sub.wait_for("faceedge/door/events", count=20)
        sub.close()
        broker.stop(kill=True)
        for i in range(20, 120):          # produced while the broker is down
            pub.publish_event(json.dumps({"n": i}))
        assert pub.outbox.depth >= 100
        broker.start()
        sub = Subscriber(broker.port, ["faceedge/door/events"], client_id="outage-sub-2")
        sub.wait_for("faceedge/door/events", lambda p: json.loads(p)["n"] == 119, timeout=60)
        assert pub.drain(30)
        got = [m["n"] for m in sub.json("faceedge/door/events")]
        assert set(range(20, 120)) <= set(got)
        firsts = sorted(set(got), key=got.index)
        assert firsts == sorted(firsts)   # in order (duplicates allowed: at least once)
        pub.stop()
    finally:
        broker.stop()


def test_outbox_is_bounded_and_survives_a_restart(tmp_path):
    config = make_config(1, tmp_path, queue_max_events=10)   # port 1: nothing listens
    pub = Publisher(config)
    pub.start()
    for i in range(25):
        pub.publish_event(json.dumps({"n": i}))
    assert pub.outbox.depth == 10 and pub.outbox.dropped == 15
    pub.stop()
    again = Publisher(config)
    assert again.outbox.depth == 10 and again.outbox.dropped == 15
    assert [json.loads(e.payload)["n"] for e in again.outbox.peek(0, 100)] == list(range(15, 25))
    again.outbox.close()


def test_commands_sent_while_offline_arrive_on_reconnect(broker, tmp_path):
    config = make_config(broker.port, tmp_path)
    pub = Publisher(config)
    pub.start()
    sub = Subscriber(broker.port, ["faceedge/door/available"])
    sub.wait_for("faceedge/door/available", lambda p: p == b"online")
    time.sleep(0.3)
    pub.stop()                                   # persistent session stays on the broker
    sub.publish("faceedge/door/gallery/set", b'{"request_id": "while-away", "action": "list"}')
    received = []
    pub = Publisher(config)
    pub.on_command(received.append)
    pub.start()
    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    pub.stop()
    assert received and json.loads(received[0])["request_id"] == "while-away"


def test_wrong_password_is_a_clear_error_not_a_crash(tmp_path):
    broker = Broker(tmp_path / "b", users={"door": "right"})
    try:
        pub = Publisher(make_config(broker.port, tmp_path, username="door", password="wrong"))
        pub.start()
        deadline = time.monotonic() + 10
        while pub.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.last_error in ("bad user name or password", "not authorised")
        assert not pub.connected
        pub.publish_event(json.dumps({"n": 1}))       # still accepted: queued on disk
        assert pub.outbox.depth == 1
        pub.stop()
        ok = Publisher(make_config(broker.port, tmp_path, username="door", password="right"))
        ok.start()
        assert ok.drain(20)                            # the queued event went out with the right password
        assert ok.last_error is None and ok.connected
        ok.stop()
    finally:
        broker.stop()


def test_unreachable_broker_is_logged_and_retried_not_a_crash(tmp_path, caplog):
    port = free_port()                                 # nothing listens yet
    pub = Publisher(make_config(port, tmp_path))
    pub.start()
    deadline = time.monotonic() + 10
    while pub.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pub.last_error == "broker unreachable"
    assert any("cannot reach the MQTT broker" in r.getMessage() for r in caplog.records)
    pub.publish_event(json.dumps({"n": 1}))
    broker = Broker(tmp_path / "late", port=port)      # the broker comes up later: picked up by the retry
    try:
        assert pub.drain(60)
        assert pub.connected
        pub.stop()
    finally:
        broker.stop()


def test_an_anonymous_broker_is_said_once_in_the_log_and_in_stats(tmp_path, caplog):
    open_broker = Broker(tmp_path / "open")
    closed = Broker(tmp_path / "closed", users={"door": "right"})
    try:
        pub = Publisher(make_config(open_broker.port, tmp_path))
        pub.start()
        deadline = time.monotonic() + 20
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        pub._client.client.reconnect()          # a second connect must not say it again
        time.sleep(1.0)
        assert pub.stats_extra()["outbox"]["broker_anonymous"] is True
        pub.stop()
        said = [r for r in caplog.records if "accepts anonymous clients" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "WARNING"
        ok = Publisher(make_config(closed.port, tmp_path, username="door", password="right",
                                   queue_dir=str(tmp_path / "q2")))
        ok.start()
        deadline = time.monotonic() + 20
        while not ok.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ok.connected
        assert ok.stats_extra()["outbox"]["broker_anonymous"] is False
        ok.stop()
    finally:
        open_broker.stop()
        closed.stop()
