"""Issue 13, critical 3: an event handed to paho just as the link drops must not kill the outbox.

paho (1.6 and 2.x) keeps a QoS 1 message published while disconnected and resends it after the
reconnect, but the info it returned keeps MQTT_ERR_NO_CONN, so `is_published()` raises
RuntimeError for ever. The broker-outage test hit that window about 1 run in 18; here the window
is forced: the real client, a real mosquitto killed, and the sender made to publish in the moment
between the link dropping and the client noticing it (its `connected` flag still true).
"""
import json
import os
import time

from edge.daemon.config import config_from_dict
from edge.daemon.publisher import Publisher
from tests.broker import Broker, Subscriber
from tests.faults import wait_until

ROOT = "fe/t"


class _Spy(object):
    """Records what the real client's publish_info returned (nothing is replaced)."""

    def __init__(self, client):
        self.real = client.publish_info
        self.infos = []
        client.publish_info = self

    def __call__(self, *args, **kwargs):
        info = self.real(*args, **kwargs)
        self.infos.append(info)
        return info


def test_an_event_sent_as_the_link_drops_is_delivered_once_and_the_sender_lives(tmp_path):
    import paho.mqtt.client as mqtt
    broker = Broker(tmp_path / "mosquitto")
    config = config_from_dict({"device": {"id": "t"},
                               "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": "fe",
                                        "queue_dir": str(tmp_path / "queue")}}, "<test>")
    sub = Subscriber(broker.port, [ROOT + "/events"], client_id="drop-collector", clean_session=False)
    sub.client.reconnect_delay_set(1, 1)
    publisher = Publisher(config)
    spy = _Spy(publisher._client)
    publisher.start()
    try:
        wait_until(lambda: publisher.connected, 30, "the publisher to connect")
        publisher.publish_event(json.dumps({"n": 1}))
        sub.wait_for(ROOT + "/events", timeout=30)
        # The collector's session must be on the broker's disk, or what arrives after the
        # restart and before the collector resubscribes is not kept for it (autosave: 1 s).
        store = os.path.join(broker.directory, "mosquitto.db")
        subscribed = time.time()
        wait_until(lambda: os.path.exists(store) and os.path.getmtime(store) > subscribed + 0.01, 10,
                   "the broker to save the collector's session")
        broker.stop(kill=True)
        wait_until(lambda: not publisher.connected, 30, "the client to notice the lost link")
        publisher._client.connected = True      # the window before paho notices: forced
        publisher.publish_event(json.dumps({"n": 2}))
        wait_until(lambda: any(i.rc == mqtt.MQTT_ERR_NO_CONN for i in spy.infos), 30,
                   "a publish made while the link was down")
        broker.start()
        wait_until(lambda: publisher.outbox.depth == 0, 60, "the outbox to drain after the reconnect")
        assert publisher.sender_alive, "the outbox sender thread died"
        publisher.publish_event(json.dumps({"n": 3}))
        sub.wait_for(ROOT + "/events", count=3, timeout=60)
        wait_until(lambda: publisher.outbox.depth == 0, 30, "the third event's acknowledgement")
        numbers = [body["n"] for body in sub.json(ROOT + "/events")]
        assert sorted(numbers) == [1, 2, 3], numbers      # each exactly once
        assert publisher.stats_extra()["outbox"]["sender_alive"] is True
    finally:
        publisher.stop()
        sub.close()
        broker.stop()
