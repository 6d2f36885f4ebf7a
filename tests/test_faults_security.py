"""Security of the transport and the files: MQTT over TLS (CA, client certificate) with a
password against a real mosquitto; wrong CA or password; secrets never logged; file modes."""
import os
import shutil
import stat
import time

import pytest

from tests.broker import Broker, Subscriber, free_port
from tests.faults import Daemon
from tests.support.daemon import write_config
from tests.support.tls import ca_cert, signed_cert

PASSWORD = "s3cret-Pa55-never-logged"
WATCHER = ("watcher", "watcher-pass")


def device_acl(user, prefix, device, discovery="homeassistant"):
    """The broker ACL recommended in docs/RELIABILITY.md: the device reads only its command topic."""
    root = "{}/{}".format(prefix, device)
    writes = ["available", "events", "stats", "gallery/response", "gallery/state", "gallery/report", "person/#"]
    return ["user " + user, "topic read {}/gallery/set".format(root)] + \
        ["topic write {}/{}".format(root, t) for t in writes] + \
        ["topic write {}/binary_sensor/faceedge_{}/#".format(discovery, device)]


@pytest.fixture
def tls_broker(tmp_path):
    """mosquitto with a password file, a plain listener (the test's own clients), a TLS listener
    that requires a client certificate and one that does not."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make test certificates (apt-get install openssl)")
    d = str(tmp_path / "pki")
    os.makedirs(d)
    ca = ca_cert(d, "ca")
    wrong_ca = ca_cert(d, "other-ca")
    server = signed_cert(d, "server", os.path.join(d, "ca"), "subjectAltName=IP:127.0.0.1,DNS:localhost")
    client = signed_cert(d, "faceedge-door", os.path.join(d, "ca"), "extendedKeyUsage=clientAuth")
    mtls, tls = free_port(), free_port()
    extra = "\n".join(["listener {} 127.0.0.1".format(mtls), "cafile " + ca, "certfile " + server[0],
                       "keyfile " + server[1], "require_certificate true",
                       "listener {} 127.0.0.1".format(tls), "cafile " + ca, "certfile " + server[0],
                       "keyfile " + server[1]])
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        # one user for both test devices; the watcher manages the gallery and reads everything
        f.write("\n".join(device_acl("door", "fe", "door") + device_acl("door", "fe", "porch")[1:] +
                          ["user " + WATCHER[0], "topic read #", "topic write fe/+/gallery/set"]) + "\n")
    extra += "\nacl_file " + acl
    broker = Broker(tmp_path / "mosquitto", users={"door": PASSWORD, WATCHER[0]: WATCHER[1]}, extra_config=extra)
    broker.pki = {"ca": ca, "wrong_ca": wrong_ca, "cert": client[0], "key": client[1]}
    broker.mtls_port, broker.tls_port = mtls, tls
    yield broker
    broker.stop()


def _password_file(tmp_path, secret):
    path = str(tmp_path / "mqtt_password")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, (secret + "\n").encode())
    os.close(fd)
    return path


def _config(tmp_path, model_dir, name, port, **mqtt):
    state = tmp_path / name
    return write_config(str(tmp_path / (name + ".toml")), state, model_dir, str(state / "gallery" / "g.db"), port,
                        [], extra={"device": {"id": name}, "mqtt": dict(mqtt, username="door"),
                                # the most talkative level: a secret must not show up even there
                                "logging": {"level": "debug"}})


def _modes(directory):
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = stat.S_IMODE(os.stat(path).st_mode)
    return out


def test_tls_with_client_certificate_or_ca_only_and_password(tls_broker, tmp_path, model_dir):
    pki, secret = tls_broker.pki, _password_file(tmp_path, PASSWORD)
    configs = {"door": _config(tmp_path, model_dir, "door", tls_broker.mtls_port, tls_ca=pki["ca"],
                               tls_cert=pki["cert"], tls_key=pki["key"], password_file=secret),
               "porch": _config(tmp_path, model_dir, "porch", tls_broker.tls_port, tls_ca=pki["ca"],
                                password_file=secret)}
    sub = Subscriber(tls_broker.port, ["fe/#"], username=WATCHER[0], password=WATCHER[1])
    daemons = dict((name, Daemon(path, verbose=True).start()) for name, path in configs.items())
    try:
        for name, daemon in daemons.items():
            daemon.wait_online(sub, root="fe/" + name)
            sub.publish("fe/{}/gallery/set".format(name), b'{"request_id": "over-tls", "action": "list"}')
            assert sub.wait_json("fe/{}/gallery/response".format(name), lambda r: r["request_id"] == "over-tls")["ok"]
            sub.wait_json("fe/{}/gallery/state".format(name), lambda body: body["people"] == 0)   # allowed by the ACL
        for daemon in daemons.values():
            assert daemon.stop() == 0
    finally:
        for daemon in daemons.values():
            daemon.cleanup()
        sub.close()
    for name, daemon in daemons.items():
        log = daemon.log()
        assert "connected to MQTT broker" in log
        assert PASSWORD not in log
        # gallery and event queue: owner-only, whatever the umask
        modes = _modes(str(tmp_path / name))
        assert modes["gallery"] == 0o700 and modes["gallery/g.db"] == 0o600, modes
        assert modes["queue"] == 0o700 and modes["queue/outbox.db"] == 0o600, modes
        assert all(m & 0o077 == 0 for p, m in modes.items() if p.startswith(("gallery", "queue"))), modes


def test_wrong_ca_or_password_is_a_clear_error_not_a_crash_loop(tls_broker, tmp_path, model_dir):
    pki, wrong = tls_broker.pki, _password_file(tmp_path, "wrong-" + PASSWORD)
    right = str(tmp_path / "right")
    os.makedirs(right)
    right = _password_file(tmp_path / "right", PASSWORD)
    daemons = {
        "wrongca": Daemon(_config(tmp_path, model_dir, "wrongca", tls_broker.tls_port, tls_ca=pki["wrong_ca"],
                                  password_file=right), verbose=True).start(),
        "wrongpw": Daemon(_config(tmp_path, model_dir, "wrongpw", tls_broker.tls_port, tls_ca=pki["ca"],
                                  password_file=wrong), verbose=True).start()}
    try:
        deadline = time.monotonic() + 60
        while not all("MQTT broker" in d.log() and "attempt 1" in d.log() for d in daemons.values()):
            assert time.monotonic() < deadline, [d.log()[-2000:] for d in daemons.values()]
            time.sleep(0.2)
        time.sleep(8.0)        # several reconnect attempts (1, 2, 4 s ...)
        assert all(d.alive() for d in daemons.values())                # no crash loop
    finally:
        for daemon in daemons.values():
            daemon.stop()
            daemon.cleanup()
    ca_log, pw_log = daemons["wrongca"].log(), daemons["wrongpw"].log()
    assert "TLS handshake with the MQTT broker 127.0.0.1:{} failed".format(tls_broker.tls_port) in ca_log
    assert "check mqtt.tls_ca" in ca_log, ca_log
    assert "bad user name or password" in pw_log or "not authorised" in pw_log
    assert "check mqtt.username and the password" in pw_log
    for log in (ca_log, pw_log):
        assert PASSWORD not in log
        # warned once, then at most every 5 minutes: a long outage does not flood the journal
        assert sum(1 for l in log.splitlines() if "retrying with backoff" in l) == 1, log
