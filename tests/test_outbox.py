import os
import subprocess
import sys

import pytest

from edge.daemon.outbox import Outbox, OutboxError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_in_order_and_removed_only_when_acknowledged(tmp_path):
    box = Outbox(str(tmp_path), 100)
    ids = [box.append("t", str(i).encode()) for i in range(5)]
    assert ids == sorted(ids) and box.depth == 5
    assert [e.payload for e in box.peek(0, 10)] == [b"0", b"1", b"2", b"3", b"4"]
    assert [e.payload for e in box.peek(ids[1], 2)] == [b"2", b"3"]
    box.ack(ids[0])
    box.ack(ids[0])                        # a duplicate PUBACK changes nothing
    assert box.depth == 4 and box.peek(0, 1)[0].payload == b"1"
    box.close()


def test_drop_oldest_is_bounded_and_counted(tmp_path):
    box = Outbox(str(tmp_path), 10)
    for i in range(25):
        box.append("t", str(i).encode())
    assert box.depth == 10 and box.dropped == 15
    assert [int(e.payload) for e in box.peek(0, 100)] == list(range(15, 25))
    box.close()


def test_drop_newest_refuses_and_counts(tmp_path):
    box = Outbox(str(tmp_path), 10, "drop_newest")
    results = [box.append("t", str(i).encode()) for i in range(12)]
    assert results[10:] == [None, None] and box.depth == 10 and box.dropped == 2
    assert [int(e.payload) for e in box.peek(0, 100)] == list(range(10))
    box.close()


def test_survives_a_killed_process(tmp_path):
    script = ("import os, signal, sys; sys.path.insert(0, {!r})\n"
              "from edge.daemon.outbox import Outbox\n"
              "box = Outbox({!r}, 10)\n"
              "for i in range(15): box.append('faceedge/x/events', str(i).encode())\n"
              "box.ack(box.peek(0, 1)[0].id)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n").format(REPO, str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script])
    assert proc.wait() == -9
    box = Outbox(str(tmp_path), 10)
    assert box.depth == 9 and box.dropped == 5
    assert [int(e.payload) for e in box.peek(0, 100)] == list(range(6, 15))
    assert box.append("t", b"15") > box.peek(0, 100)[-2].id   # ids keep growing after a restart
    box.close()


def test_a_smaller_bound_after_a_restart_drops_the_oldest(tmp_path):
    box = Outbox(str(tmp_path), 20)
    for i in range(20):
        box.append("t", str(i).encode())
    box.close()
    box = Outbox(str(tmp_path), 10)
    box.append("t", b"20")
    assert box.depth == 10 and [int(e.payload) for e in box.peek(0, 100)] == list(range(11, 21))
    box.close()


def test_an_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError) as info:
        Outbox(str(blocker / "queue"), 10)
    assert "event queue" in str(info.value)
