"""A real mosquitto on a free loopback port, and a subscriber that collects messages.

    from tests.broker import Broker, Subscriber, broker   # `broker` is a pytest fixture

    with Broker(tmp_path) as b:                # persistence on: sessions survive a restart
        sub = Subscriber(b.port, ["faceedge/#"])
        sub.wait_for("faceedge/door/available", lambda p: p == b"online")
        b.stop(); b.start()                    # same port; b.stop(kill=True) for SIGKILL
    Broker(tmp_path, users={"door": "secret"})  # password file, anonymous refused
    Broker(tmp_path, extra_config="...")        # e.g. a TLS listener
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from edge.commands.demo import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Broker(object):
    def __init__(self, directory=None, port=None, persistence=True, extra_config="", allow_anonymous=True,
                 users=None):
        if not os.path.exists(MOSQUITTO):
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.directory = str(directory) if directory else tempfile.mkdtemp(prefix="mosquitto-")
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory)
        self.port = port or free_port()
        self.log_path = os.path.join(self.directory, "mosquitto-{}.log".format(self.port))
        self.config = os.path.join(self.directory, "mosquitto-{}.conf".format(self.port))
        lines = ["listener {} 127.0.0.1".format(self.port),
                 "allow_anonymous {}".format("true" if allow_anonymous and not users else "false"),
                 "log_dest file {}".format(self.log_path), "log_type all"]
        if os.geteuid() == 0:
            # As root, mosquitto drops to user `mosquitto`, which cannot read a 0700 pytest tmp dir.
            lines.append("user root")
        if persistence:
            lines += ["persistence true", "persistence_location {}/".format(self.directory), "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if users:
            pw = os.path.join(self.directory, "passwd-{}".format(self.port))
            for i, (user, password) in enumerate(sorted(users.items())):
                subprocess.check_call(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [pw, user, password])
            lines.append("password_file {}".format(pw))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_config + "\n")
        self.proc = None
        self.start()

    def start(self):
        """Start (again) on the same port."""
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            # "running" is logged once every listener is open: a port taken by another broker
            # (a parallel test run) fails here instead of silently connecting clients to it
            if self._logged_since(offset, " running"):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop(kill=True)
        raise RuntimeError("mosquitto did not start on port {}: {}".format(self.port, self.log_tail()))

    def _logged_since(self, offset, text):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return text.encode() in f.read()
        except (IOError, OSError):
            return False

    def stop(self, kill=False):
        """Terminate (the broker saves its sessions) or SIGKILL."""
        if self.proc is not None:
            if self.proc.poll() is None:
                if kill:
                    self.proc.kill()
                else:
                    self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def log_tail(self, lines=20):
        try:
            with open(self.log_path) as f:
                return " | ".join(f.read().splitlines()[-lines:])
        except (IOError, OSError):
            return "(no log)"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "mosquitto")
    yield b
    b.stop()


def make_client(client_id, clean_session=True):
    """A paho client for 1.6 or 2.x (the daemon's own factory)."""
    from edge.daemon.mqtt_client import paho_client
    return paho_client(client_id, clean_session=clean_session)


class Subscriber(object):
    """Collects (topic, payload, retain) from a real broker connection; ready when subscribed."""

    _count = 0

    def __init__(self, port, topics, client_id=None, clean_session=True, username=None, password=None, tls=None):
        """clean_session=False keeps the subscription and queued messages across a broker restart;
        tls: dict of paho tls_set() keywords (ca_certs, certfile, keyfile)."""
        Subscriber._count += 1
        self.messages = []
        self._cond = threading.Condition()
        self.client = make_client(client_id or "test-sub-{}-{}".format(os.getpid(), Subscriber._count),
                                  clean_session=clean_session)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        subscribed = threading.Event()
        pending = set()

        def on_connect(client, userdata, flags, rc, *rest):
            for topic in topics:
                pending.add(client.subscribe(topic, qos=1)[1])

        def on_subscribe(client, userdata, mid, *rest):
            pending.discard(mid)
            if not pending:
                subscribed.set()

        def on_message(client, userdata, message):
            with self._cond:
                self.messages.append((message.topic, message.payload, bool(message.retain)))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(15):
            raise RuntimeError("test subscriber could not subscribe on port {}".format(port))

    def payloads(self, topic):
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def json(self, topic):
        return [json.loads(p.decode("utf-8")) for p in self.payloads(topic)]

    def wait_for(self, topic, predicate=lambda payload: True, timeout=30, count=1):
        """The payloads on topic matching predicate, once there are at least count of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [p for t, p, _ in self.messages if t == topic and predicate(p)]
                if len(hits) >= count:
                    return hits
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("waited {}s for {} message(s) on {}; last messages: {}".format(
                        timeout, count, topic, [(t, p[:200]) for t, p, _ in self.messages[-10:]]))
                self._cond.wait(remaining)

    def wait_json(self, topic, predicate=lambda body: True, timeout=30):
        """The first JSON body on topic matching predicate."""
        def match(payload):
            try:
                return predicate(json.loads(payload.decode("utf-8")))
            except ValueError:
                return False
        return json.loads(self.wait_for(topic, match, timeout)[0].decode("utf-8"))

    def wait_message(self, predicate, timeout=120.0):
        """Every message (topic, text, retain) matching predicate, once there is one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [m for m in self._texts() if predicate(m)]
                if hits:
                    return hits
                remaining = deadline - time.monotonic()
                assert remaining > 0, "no matching MQTT message; got {}".format(
                    [m[:2] for m in self._texts()][-10:])
                self._cond.wait(remaining)

    def _texts(self):
        return [(t, p.decode("utf-8", "replace"), r) for t, p, r in self.messages]

    def events(self):
        """The event bodies received (new / update / end), on whichever topics were subscribed."""
        out = []
        with self._cond:
            texts = self._texts()
        for _, text, _ in texts:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("type") in ("new", "update", "end") and "track_id" in data:
                out.append(data)
        return out

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish()

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish_once(port, topic, payload):
    """One QoS 1 message from a short-lived client (a command sent from outside)."""
    client = make_client("test-sender-{}".format(os.getpid()))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish()
    finally:
        client.loop_stop()
        client.disconnect()
