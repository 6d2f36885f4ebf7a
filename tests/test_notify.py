import os
import socket

from edge.daemon.notify import Notifier


def _listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock, path


def test_messages_reach_the_socket(tmp_path, monkeypatch):
    sock, path = _listener(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_env()
    assert notifier.watchdog_interval_s() == 2.0
    notifier.ready("1 camera")
    notifier.status("15.0 fps\nsecond line")
    notifier.watchdog()
    notifier.stopping()
    got = [sock.recv(4096).decode() for _ in range(4)]
    assert got == ["READY=1\nSTATUS=1 camera", "STATUS=15.0 fps second line", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket(monkeypatch):
    name = "faceedge-test-{}".format(os.getpid())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    Notifier.from_env().ready()
    assert sock.recv(100) == b"READY=1"


def test_without_systemd_everything_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled and notifier.watchdog_interval_s() is None
    assert notifier.ready() is False and notifier.watchdog() is False


def test_watchdog_meant_for_another_process_is_ignored(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.from_env().watchdog_interval_s() is None
