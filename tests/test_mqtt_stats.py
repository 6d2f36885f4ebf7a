"""Stats (outbox + device telemetry), presence and persistent sessions across a broker restart."""
import json
import time

from edge.daemon.publisher import Publisher
from edge.daemon.telemetry import Telemetry
from tests.broker import Broker, Subscriber
from tests.support.daemon import make_config


class FakeJtop(object):
    """jtop's client surface: start(), ok(), stats, close()."""

    def __init__(self):
        self.closed = False
        self.stats = {"CPU1": 37, "GPU": 12.5, "RAM": 0.41, "Temp GPU": 41.5, "Power TOT": 5123,
                      "uptime": "1 day", "jetson_clocks": False}

    def start(self):
        pass

    def ok(self):
        return True

    def close(self):
        self.closed = True


def test_telemetry_uses_jtop_when_available():
    fake = FakeJtop()
    telemetry = Telemetry(jtop_factory=lambda: fake)
    snap = telemetry.snapshot()
    assert snap["source"] == "jtop" and snap["GPU"] == 12.5 and snap["Power TOT"] == 5123.0
    assert "uptime" not in snap and "jetson_clocks" not in snap and "load_1m" in snap
    telemetry.close()
    assert fake.closed


def test_telemetry_falls_back_to_proc_without_jtop():
    def missing():
        raise ImportError("No module named 'jtop'")
    snap = Telemetry(jtop_factory=missing).snapshot()
    assert snap["source"] == "proc" and snap["load_1m"] >= 0 and snap["mem_total_mb"] > 0
    assert snap["process_rss_mb"] > 0


def test_telemetry_from_a_fake_proc(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "loadavg").write_text("1.50 0.80 0.40 1/100 123\n")
    (tmp_path / "proc" / "meminfo").write_text("MemTotal:  4096000 kB\nMemFree: 100 kB\nMemAvailable: 1024000 kB\n")
    (tmp_path / "proc" / "self" / "status").write_text("Name: python\nVmRSS:   204800 kB\n")
    zone = tmp_path / "sys" / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("GPU-therm\n")
    (zone / "temp").write_text("41500\n")
    snap = Telemetry(jtop_factory=lambda: 1 / 0, proc_root=str(tmp_path / "proc"),
                     sys_root=str(tmp_path / "sys")).snapshot()
    assert snap["load_1m"] == 1.5 and snap["mem_total_mb"] == 4000.0 and snap["mem_used_mb"] == 3000.0
    assert snap["process_rss_mb"] == 200.0 and snap["temperature_c"] == {"GPU-therm": 41.5}


def test_stats_carry_the_service_part_outbox_and_device(broker, tmp_path):
    sub = Subscriber(broker.port, ["faceedge/door/stats"])
    pub = Publisher(make_config(broker.port, tmp_path, queue_max_events=50),
                    telemetry=Telemetry(jtop_factory=lambda: FakeJtop()))
    pub.start()
    try:
        for i in range(3):
            pub.publish_event(json.dumps({"n": i}))
        assert pub.drain(20)
        pub.publish_stats({"cameras": {"door": {"fps": 10.0, "dropped": 2, "reconnects": 0}},
                           "latency_ms": {"detect": {"p50": 20.0, "p95": 31.0}}})
        stats = json.loads(sub.wait_for("faceedge/door/stats")[0])
        assert stats["cameras"]["door"]["fps"] == 10.0 and stats["latency_ms"]["detect"]["p95"] == 31.0
        assert stats["outbox"]["capacity"] == 50 and stats["outbox"]["depth"] == 0
        assert stats["outbox"]["dropped"] == 0 and stats["outbox"]["published"] == 3
        assert stats["outbox"]["full_policy"] == "drop_oldest"
        assert stats["outbox"]["publish_latency_ms"] is not None
        assert stats["device"]["source"] == "jtop" and stats["device"]["GPU"] == 12.5
    finally:
        pub.stop()


def test_presence_is_retained_per_person_and_for_unknown_faces(broker, tmp_path):
    pub = Publisher(make_config(broker.port, tmp_path))
    pub.start()
    try:
        pub.publish_presence("Ana María", True, {"camera": "door", "similarity": 0.71, "event_id": "e1",
                                                 "ignored": 1})
        pub.publish_presence(None, True, {"camera": "door"})
        late = Subscriber(broker.port, ["faceedge/door/person/#"])
        topic = pub.presence_topic("Ana María")
        assert topic.startswith("faceedge/door/person/ana_mar") and "í" not in topic
        body = json.loads(late.wait_for(topic)[0])
        assert body["present"] and body["camera"] == "door" and body["similarity"] == 0.71
        assert "ignored" not in body
        assert json.loads(late.wait_for("faceedge/door/person/unknown")[0])["name"] is None
        late.close()
    finally:
        pub.stop()


def test_commands_sent_while_offline_survive_a_broker_restart(tmp_path):
    broker = Broker(tmp_path / "b")           # persistence on
    try:
        config = make_config(broker.port, tmp_path)
        pub = Publisher(config)
        pub.start()
        sub = Subscriber(broker.port, ["faceedge/door/available"])
        sub.wait_for("faceedge/door/available", lambda p: p == b"online")
        pub.stop()                            # the broker keeps the session and its subscription
        sub.close()
        broker.stop()                         # saved to disk...
        broker.start()                        # ...and loaded again, same port
        sender = Subscriber(broker.port, ["faceedge/door/available"])
        for i in range(3):
            sender.publish("faceedge/door/gallery/set", json.dumps({"request_id": "away-{}".format(i),
                                                                   "action": "list"}).encode())
        sender.close()
        received = []
        pub = Publisher(config)
        pub.on_command(received.append)
        pub.start()
        deadline = time.monotonic() + 30
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pub.stop()
        assert [json.loads(p)["request_id"] for p in received] == ["away-0", "away-1", "away-2"]
    finally:
        broker.stop()
