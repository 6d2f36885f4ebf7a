"""Presence from track events: one state change per visit, not per event."""
from edge.daemon.events import ZERO_LATENCY, Event
from edge.daemon.presence import Presence


def event(kind, track, identity):
    return Event(kind, "e", track, "door", identity, 0.8, (0, 0, 1, 1), 0.9, 1.0, True, ZERO_LATENCY)


def recorder(enrolled=()):
    sent = []
    return sent, Presence(lambda name, present, ev: sent.append((name, present)), lambda: list(enrolled))


def test_a_visit_switches_once_each_way():
    sent, p = recorder()
    p.observe(event("new", "t1", None))          # a stranger first ...
    p.observe(event("update", "t1", "alice"))    # ... then recognised
    p.observe(event("update", "t1", "alice"))    # became confident: no change
    assert sent == [(None, True), (None, False), ("alice", True)]
    p.observe(event("new", "t2", "alice"))       # a second camera sees her too
    p.observe(event("end", "t1", "alice"))
    assert sent[-1] == ("alice", True) and p.present("alice")
    p.observe(event("end", "t2", "alice"))
    assert sent[-1] == ("alice", False) and not p.present("alice")


def test_republish_corrects_everyone_after_a_reconnect():
    sent, p = recorder(enrolled=["alice", "bob"])
    p.observe(event("new", "t1", "bob"))
    del sent[:]
    p.republish()
    assert sorted(sent, key=str) == sorted([("alice", False), ("bob", True), (None, False)], key=str)


def test_end_of_an_unknown_track_is_ignored():
    sent, p = recorder()
    p.observe(event("end", "t9", "alice"))
    assert sent == []
