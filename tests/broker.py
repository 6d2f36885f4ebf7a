"""A real mosquitto on a free loopback port, and a subscriber that collects messages.

    with Broker(tmp_path) as broker:          # or the `broker` fixture
        sub = Subscriber(broker.port, ["faceedge/#"])
        ...
        broker.stop(); broker.start()          # same port, sessions kept (persistence)
"""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Broker(object):
    def __init__(self, directory, port=None, extra_config="", allow_anonymous=True):
        if not os.path.exists(MOSQUITTO):
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.directory = str(directory)
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory)
        self.port = port or free_port()
        self.config = os.path.join(self.directory, "mosquitto-{}.conf".format(self.port))
        with open(self.config, "w") as f:
            f.write("listener {} 127.0.0.1\nallow_anonymous {}\npersistence true\n"
                    "persistence_location {}/\nautosave_interval 1\n{}\n".format(
                        self.port, "true" if allow_anonymous else "false", self.directory, extra_config))
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start on port {}".format(self.port))

    def stop(self, kill=False):
        if self.proc is not None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Subscriber(object):
    """Collects (topic, payload) pairs from a real broker connection."""

    def __init__(self, port, topics, client_id=None):
        import paho.mqtt.client as mqtt
        self.messages = []
        self._cond = threading.Condition()
        kwargs = {"client_id": client_id or "test-sub-{}".format(time.monotonic())}
        if hasattr(mqtt, "CallbackAPIVersion"):
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            self.client = mqtt.Client(**kwargs)
        subscribed = threading.Event()

        def on_connect(client, userdata, flags, rc, *rest):
            for topic in topics:
                client.subscribe(topic, qos=1)
            subscribed.set()

        def on_message(client, userdata, message):
            with self._cond:
                self.messages.append((message.topic, message.payload, bool(message.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("test subscriber could not connect")
        time.sleep(0.2)

    def payloads(self, topic):
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def json(self, topic):
        return [json.loads(p.decode("utf-8")) for p in self.payloads(topic)]

    def wait_for(self, topic, predicate=lambda payload: True, timeout=30, count=1):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [p for t, p, _ in self.messages if t == topic and predicate(p)]
                if len(hits) >= count:
                    return hits
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("waited {}s for {} message(s) on {}; got {}".format(
                        timeout, count, topic, [(t, p[:200]) for t, p, _ in self.messages[-10:]]))
                self._cond.wait(remaining)

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
