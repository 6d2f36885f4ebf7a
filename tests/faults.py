"""Helpers of the fault-injection suite (tests/test_faults_*.py): the real daemon as a
subprocess with its sd_notify socket, a stats reader, and the figures for docs/RELIABILITY.md.

    d = Daemon(config_path).start()
    d.wait_notify("READY=1"); d.kill()            # SIGKILL; d.stop() is SIGTERM
    d.log()                                        # everything it wrote to stderr

Set FACEEDGE_FIGURES=/path/file.jsonl to collect the measured figures (one JSON object a line).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from tests.support import REPO


def record_figure(name, **values):
    """Append a measured figure for docs/RELIABILITY.md when FACEEDGE_FIGURES is set."""
    path = os.environ.get("FACEEDGE_FIGURES")
    if path:
        values.update(name=name, python="{}.{}".format(*sys.version_info[:2]))
        with open(path, "a") as f:
            f.write(json.dumps(values, sort_keys=True) + "\n")


def wait_until(predicate, limit=60.0, what="condition"):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out after {:.0f} s waiting for {}".format(limit, what))


class Daemon(object):
    """`python -m edge run --config FILE` (or `python -m tests.fault_daemon ...` with injected
    faults) with NOTIFY_SOCKET bound to a datagram socket read by a thread."""

    def __init__(self, config, watchdog_s=2.0, module="edge", args=(), verbose=False, env=None):
        self.config = config
        self.watchdog_s = watchdog_s
        self.module = module
        self.args = list(args)
        self.verbose = verbose
        self.env = env or {}
        # AF_UNIX paths are limited to 108 bytes: pytest's tmp paths can be longer.
        self._dir = tempfile.mkdtemp(prefix="fe-notify-")
        self.log_path = os.path.join(self._dir, "daemon.log")
        self.notices = []           # (time.monotonic(), "KEY=value")
        self._cond = threading.Condition()
        self.proc = None
        self._sock = None
        self._final_log = ""

    def start(self):
        sock_path = os.path.join(self._dir, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(sock_path)
        self._sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC=str(int(self.watchdog_s * 1e6)),
                   JOURNAL_STREAM="8:1", PYTHONPATH=REPO, **self.env)
        env.pop("WATCHDOG_PID", None)
        argv = [sys.executable, "-m", self.module] + (["-v"] if self.verbose else []) + \
            ["run", "--config", self.config] + self.args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)
        reader = threading.Thread(target=self._read, args=(self._sock,))
        reader.daemon = True
        reader.start()
        return self

    def _read(self, sock):
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                if sock.fileno() < 0:
                    return
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._cond:
                self.notices.extend((now, line) for line in data.decode("utf-8", "replace").split("\n") if line)
                self._cond.notify_all()

    def wait_notify(self, text, limit=120.0, after=0.0):
        """The time of the first notice equal to (or starting with) text, received after `after`."""
        end = time.monotonic() + limit
        with self._cond:
            while True:
                for t, line in self.notices:
                    if t >= after and (line == text or line.startswith(text)):
                        return t
                assert self.alive(), "daemon exited ({}): {}".format(self.proc.returncode, self.log()[-3000:])
                left = end - time.monotonic()
                assert left > 0, "no {} from the daemon in {:.0f} s: {}".format(text, limit, self.log()[-3000:])
                self._cond.wait(min(left, 0.5))

    def wait_online(self, sub, count=1, limit=120.0, root="fe/testcam"):
        """Until `sub` saw `online` on <root>/available count times (the daemon must stay up)."""
        end = time.monotonic() + limit
        while len([p for p in sub.payloads(root + "/available") if p == b"online"]) < count:
            assert self.alive(), "daemon exited ({}): {}".format(self.proc.returncode, self.log()[-3000:])
            assert time.monotonic() < end, "daemon not online in {:.0f} s: {}".format(limit, self.log()[-3000:])
            time.sleep(0.05)

    def watchdogs(self, start=0.0, end=float("inf")):
        with self._cond:
            return [t for t, line in self.notices if line == "WATCHDOG=1" and start <= t <= end]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        if not os.path.exists(self.log_path):
            return self._final_log      # after cleanup()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._close()

    def stop(self, timeout=60):
        """SIGTERM; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()
        return self.proc.returncode

    def _close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._log.close()

    def cleanup(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        if self._sock is not None:
            self._close()
        self._final_log = self.log()
        shutil.rmtree(self._dir, ignore_errors=True)


def produced_events(log_text):
    """Events the daemon produced, from its last log line ("stopped: N frames processed, M events")."""
    found = re.findall(r"stopped: (\d+) frames processed, (\d+) events", log_text)
    assert found, "the daemon did not log its clean stop: " + log_text[-2000:]
    return int(found[-1][1])


def stats_bodies(subscriber, root="fe/testcam"):
    """Every stats JSON received so far, oldest first."""
    return subscriber.json(root + "/stats")


def last_stats(subscriber, predicate=lambda s: True, limit=60.0, root="fe/testcam", after_count=0):
    """The newest stats body matching predicate among those after the first after_count."""
    def found():
        hits = [s for s in stats_bodies(subscriber, root)[after_count:] if predicate(s)]
        return hits[-1] if hits else None
    return wait_until(found, limit, "a stats message on {}/stats".format(root))
