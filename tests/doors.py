"""Many doors on real brokers (tests/test_many_doors.py): mosquitto closed as docs/MANY_DOORS.md
shows (TLS for the devices, a password file, an ACL: each device writes only its own root, only
writers write `fe/_gallery/#`), bridged sites over a TCP link the test can cut, and daemons.

    pki = Pki(tmp_path)
    one = GalleryBroker(tmp_path / "site1", pki, devices=["door-a"], writers=["door-a"])
    link = Link(one.tls_port)                       # the WAN between the sites
    two = GalleryBroker(tmp_path / "site2", pki, devices=["door-b"], writers=["door-b"], bridge_port=link.port)
    door = Door(tmp_path, model_dir, one, "door-a").start()
    watch = one.observer()                           # the admin: reads everything, sends commands
    send(watch, "door-a", {"action": "enroll", ...})
"""
import base64
import json
import os
import socket
import threading
import time

from edge.commands.demo import free_port
from tests.broker import Broker, Subscriber
from tests.faults import Daemon
from tests.support.daemon import write_config
from tests.support.tls import ca_cert, signed_cert

PREFIX = "fe"
SHARED = "house"


def password(user):
    return user + "-Pa55"


class Pki(object):
    """A CA and a server certificate for 127.0.0.1 (openssl)."""

    def __init__(self, directory):
        d = str(directory)
        os.makedirs(d)
        self.ca = ca_cert(d, "ca")
        self.cert, self.key = signed_cert(d, "broker", os.path.join(d, "ca"), "subjectAltName=IP:127.0.0.1,DNS:localhost")


def acl(devices, writers):
    """The ACL of docs/MANY_DOORS.md (prefix fe, gallery house)."""
    lines = ["pattern readwrite {}/%u/#".format(PREFIX),
             "pattern write homeassistant/binary_sensor/faceedge_%u/#"]
    for device in devices:
        lines += ["user " + device, "topic {} {}/_gallery/{}/#".format(
            "readwrite" if device in writers else "read", PREFIX, SHARED)]
    lines += ["user admin", "topic read #", "topic write {}/+/gallery/set".format(PREFIX),
              "user bridge", "topic readwrite {}/_gallery/#".format(PREFIX)]
    return lines


class GalleryBroker(Broker):
    """mosquitto with a plain listener for the test's own clients (password + ACL too) and a TLS
    listener for the daemons and bridges; bridge_port: bridge `fe/_gallery/#` both ways to the
    TLS listener of another broker reached there."""

    def __init__(self, directory, pki, devices, writers, bridge_port=None, persistence=True, port=None,
                 tls_port=None):
        directory = str(directory)
        os.makedirs(directory, exist_ok=True)
        self.pki = pki
        self.devices = list(devices)
        self.tls_port = tls_port or free_port()
        acl_path = os.path.join(directory, "acl")
        with open(acl_path, "w") as f:
            f.write("\n".join(acl(devices, writers)) + "\n")
        extra = ["acl_file " + acl_path,
                 "listener {} 127.0.0.1".format(self.tls_port),
                 "cafile " + pki.ca, "certfile " + pki.cert, "keyfile " + pki.key]
        if bridge_port:
            extra += ["connection other-site", "address 127.0.0.1:{}".format(bridge_port),
                      "bridge_cafile " + pki.ca, "remote_username bridge", "remote_password " + password("bridge"),
                      "remote_clientid bridge-{}".format(self.tls_port), "cleansession false",
                      "restart_timeout 1", "topic {}/_gallery/# both 1".format(PREFIX)]
        users = dict((u, password(u)) for u in self.devices + ["admin", "bridge"])
        Broker.__init__(self, directory, port=port, persistence=persistence, users=users,
                        extra_config="\n".join(extra))

    def observer(self, topics=("fe/#",)):
        return Subscriber(self.port, list(topics), username="admin", password=password("admin"))


class Link(object):
    """A TCP forwarder standing for the WAN between two sites: cut() drops every connection and
    refuses new ones until restore()."""

    def __init__(self, target_port):
        self.target = target_port
        self.up = True
        self._conns = []
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(8)
        self.port = self._server.getsockname()[1]
        t = threading.Thread(target=self._accept)
        t.daemon = True
        t.start()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(a, b))
                t.daemon = True
                t.start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self._server.close()


class Door(object):
    """One faceedge daemon on a shared gallery, connected with TLS, its own user and password."""

    def __init__(self, tmp_path, model_dir, broker, device, writer=True, video=None, profile="default"):
        self.device = device
        state = tmp_path / device
        os.makedirs(str(state), exist_ok=True)
        secret = str(state / "mqtt_password")
        fd = os.open(secret, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        os.write(fd, password(device).encode())
        os.close(fd)
        self.gallery_path = str(state / "gallery.db")
        cameras = [{"name": "door", "source": video, "type": "file", "loop": True}] if video else []
        self.config = write_config(
            str(state / "faceedge.toml"), state, model_dir, self.gallery_path, broker.tls_port, cameras,
            prefix=PREFIX,
            extra={"device": {"id": device}, "models": {"profile": profile},
                   "gallery": {"shared_id": SHARED, "shared_writer": writer},
                   "mqtt": {"username": device, "password_file": secret, "tls_ca": broker.pki.ca,
                            "stats_interval_s": 10},
                   "recognition": {"det_size": 320}})
        self.daemon = Daemon(self.config)

    def start(self):
        self.daemon.start()
        return self

    def stop(self):
        self.daemon.stop()

    def log(self):
        return self.daemon.log()


def photo_b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def send(watch, device, command, timeout=60):
    """A gallery command from the admin; the first answer to this sending (and when it came)."""
    topic = "{}/{}/gallery/".format(PREFIX, device)

    def ours(payload):
        try:
            return json.loads(payload.decode("utf-8")).get("request_id") == command["request_id"]
        except ValueError:
            return False
    before = len([p for p in watch.payloads(topic + "response") if ours(p)])
    watch.publish(topic + "set", json.dumps(command))
    answers = watch.wait_for(topic + "response", ours, timeout=timeout, count=before + 1)
    return json.loads(answers[before].decode("utf-8")), time.monotonic()


def status(watch, device, predicate, timeout=60):
    """The first retained sync status of a device (gallery/shared) matching predicate."""
    return watch.wait_json("{}/{}/gallery/shared".format(PREFIX, device), predicate, timeout=timeout)


def caught_up(watch, *devices):
    """Wait until each device is subscribed and has handled every retained gallery message."""
    for device in devices:
        status(watch, device, lambda s: s["caught_up"])


def names_on(watch, device, names, timeout=60):
    """Wait until the device's gallery/state lists exactly these names; the time it did."""
    watch.wait_json("{}/{}/gallery/state".format(PREFIX, device),
                    lambda b: sorted(b.get("names", [])) == sorted(names), timeout=timeout)
    return time.monotonic()


def recognised(watch, device, name, after_wall, timeout=60):
    """The first event of the device naming `name` in a frame captured after after_wall (epoch)."""
    return watch.wait_json("{}/{}/events".format(PREFIX, device),
                           lambda b: b.get("identity") == name and b.get("frame_time", 0) >= after_wall,
                           timeout=timeout)
