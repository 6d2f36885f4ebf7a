"""The shared gallery's format and sync engine, without a broker: engines on real SQLite
galleries exchange messages through an in-order retained store (what a broker keeps)."""
import json

import numpy as np
import pytest

from edge.gallery import Gallery, Sample
from edge.sharing.format import (MAX_PERSON_BYTES, MAX_SAMPLES, SharedFormatError, decode_manifest, decode_person,
                                 encode_person, version_key)
from edge.sharing.state import SharedState
from edge.sharing.sync import SyncEngine

FP = "a" * 64


def face(seed):
    rng = np.random.RandomState(seed)
    crop = (rng.rand(112, 112, 3) * 255).astype(np.uint8)
    crop[30:80, 30:80] = rng.randint(0, 255)
    vector = rng.randn(128).astype(np.float32)
    return Sample(crop, vector / np.linalg.norm(vector), "test:{}".format(seed))


class Site(object):
    """What a broker does for the engines: keeps the last retained message per topic and hands
    every publication to every engine, in order."""

    def __init__(self):
        self.retained = {}
        self.queue = []
        self.devices = []

    def publish(self, suffix, payload):
        if payload:
            self.retained[suffix] = payload
        else:
            self.retained.pop(suffix, None)
        self.queue.append((suffix, payload))

    def pump(self, only=None):
        while self.queue:
            suffix, payload = self.queue.pop(0)
            for device in self.devices:
                if only is None or device in only:
                    device.deliver(suffix, payload)
        for device in self.devices:
            device.engine.flush()
        if self.queue:
            self.pump(only)


class Device(object):
    def __init__(self, site, tmp_path, name, writer=True):
        self.name = name
        self.gallery = Gallery(str(tmp_path / "{}.db".format(name)))
        self.responses = []
        self.changes = 0
        self.site = site
        self.engine = SyncEngine(SharedState(self.gallery, "house"), name, writer, self.publish,
                                 respond=lambda rid, error, conflict: self.responses.append((rid, error, conflict)),
                                 on_change=self.changed, fingerprints=lambda: [FP])
        site.devices.append(self)

    def publish(self, suffix, payload):
        self.site.publish(suffix, payload)

    def changed(self):
        self.changes += 1

    def deliver(self, suffix, payload):
        if suffix == "manifest":
            self.engine.on_manifest(payload)
        else:
            self.engine.on_person(suffix.split("/", 1)[1], payload)

    def connect(self):
        """Subscribing: the retained messages, then the end marker."""
        self.engine.connected()
        for suffix, payload in sorted(self.site.retained.items(), key=lambda kv: kv[0] != "manifest"):
            self.deliver(suffix, payload)
        self.engine.on_retained_done()

    def names(self):
        return sorted(p.name for p in self.gallery.list_people())


@pytest.fixture
def site():
    return Site()


def test_person_message_round_trip_and_bounds():
    from edge.sharing.format import PersonMessage, SharedSample
    from edge.sharing.state import crop_jpeg
    jpeg = crop_jpeg(face(1).crop)
    assert jpeg.startswith(b"\xff\xd8") and len(jpeg) < 16 * 1024
    sample = SharedSample("ab" * 16, False, jpeg, {FP: face(1).embedding}, "x", 1.0)
    message = PersonMessage("p1", 3, "Ann", "door-a", 2.0, False, [sample])
    back = decode_person(encode_person(message), "p1")
    assert (back.revision, back.name, back.changed_by, back.samples[0].jpeg) == (3, "Ann", "door-a", jpeg)
    # float16 on the wire: the vector survives to 1e-3
    assert np.allclose(back.samples[0].embeddings[FP], face(1).embedding, atol=1e-3)
    with pytest.raises(SharedFormatError, match="person_id"):
        decode_person(encode_person(message), "p2")
    too_many = message._replace(samples=[sample._replace(key="{:032x}".format(i)) for i in range(MAX_SAMPLES + 1)])
    with pytest.raises(SharedFormatError, match="at most"):
        decode_person(encode_person(too_many), "p1")
    huge = json.dumps({"format": 1, "pad": "x" * MAX_PERSON_BYTES}).encode()
    with pytest.raises(SharedFormatError, match="over"):
        decode_person(huge, "p1")
    for bad in (b"", b"[]", b"{", json.dumps({"format": 2}).encode()):
        with pytest.raises(SharedFormatError):
            decode_person(bad, "p1")
    assert version_key(4, False, "b") > version_key(4, False, "a")
    assert version_key(4, True, "a") > version_key(4, False, "z")     # a removal wins at equal revision
    assert version_key(5, False, "a") > version_key(4, True, "z")


def test_enroll_on_a_reaches_b_and_c_rename_and_remove_from_b(site, tmp_path):
    a, b, c = (Device(site, tmp_path, n) for n in ("door-a", "door-b", "door-c"))
    for d in (a, b, c):
        d.connect()
    a.gallery.enroll("Ann", [face(1), face(2)], FP)
    changed = a.engine.local_changed("req-1")
    assert list(changed.values()) == [1]
    site.pump()
    assert b.names() == c.names() == ["Ann"]
    matrix = c.gallery.embeddings(FP)
    assert matrix.vectors.shape == (2, 128)
    assert np.allclose(sorted(matrix.vectors[:, 0]), sorted([face(1).embedding[0], face(2).embedding[0]]), atol=1e-3)
    crops = [s.crop for s in c.gallery.samples()]
    assert all(crop.shape == (112, 112, 3) for crop in crops)

    b.gallery.rename("Ann", "Anne")
    b.engine.local_changed()
    site.pump()
    assert a.names() == c.names() == ["Anne"]
    assert a.engine.status()["in_sync"] and c.engine.status()["manifest_revision"] == 2

    b.gallery.remove("Anne")
    b.engine.local_changed()
    site.pump()
    assert a.names() == b.names() == c.names() == []
    manifest = decode_manifest(site.retained["manifest"])
    assert manifest.people == {} and list(manifest.removed.values()) == [3]
    assert not any(k.startswith("person/") for k in site.retained)     # the crops left the broker too
    # the tombstone keeps a stale copy from coming back
    assert len(a.gallery.integrity_check()) and a.engine.status()["removed"] == 1


def test_device_off_catches_up_and_its_offline_cli_change_is_published(site, tmp_path):
    a, c = Device(site, tmp_path, "door-a"), Device(site, tmp_path, "door-c")
    a.connect()
    c.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    site.pump()
    site.devices.remove(c)                      # C is off
    a.gallery.enroll("Bob", [face(3)], FP)
    a.engine.local_changed()
    a.gallery.rename("Ann", "Anne")
    a.engine.local_changed()
    a.gallery.enroll("Cid", [face(4)], FP)
    a.engine.local_changed()
    site.pump()
    c.gallery.enroll("Dee", [face(5)], FP)     # `faceedge enroll` on C while its daemon is off
    site.devices.append(c)
    c.connect()
    site.pump()
    assert c.names() == a.names() == ["Anne", "Bob", "Cid", "Dee"]
    assert a.engine.status()["local_revision"] == c.engine.status()["local_revision"] == 5


def test_concurrent_edits_one_winner_everywhere_and_the_loser_is_told(site, tmp_path):
    a, b = Device(site, tmp_path, "door-a"), Device(site, tmp_path, "door-b")
    a.connect()
    b.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    site.pump()
    # Both rename at once: neither has seen the other's change when it publishes.
    a.gallery.rename("Ann", "Ann A", request_id="ra")
    b.gallery.rename("Ann", "Ann B", request_id="rb")
    a.engine.local_changed("ra")
    b.engine.local_changed("rb")
    site.pump()
    assert a.names() == b.names() == ["Ann B"]          # revision 2 each: the greater writer id wins
    assert a.responses and a.responses[0][0] == "ra" and "superseded" in a.responses[0][1]
    assert a.responses[0][2]["winner"] == "door-b"
    assert b.responses == []
    assert decode_person(site.retained[[k for k in site.retained if k.startswith("person/")][0]],
                         a.engine.state.uid_of("Ann B")).name == "Ann B"


def test_stale_retained_person_is_healed_by_the_writer_that_knows_better(site, tmp_path):
    a, b = Device(site, tmp_path, "door-a"), Device(site, tmp_path, "door-b")
    a.connect()
    b.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    site.pump()
    uid = a.engine.state.uid_of("Ann")
    old = site.retained["person/" + uid]
    a.gallery.rename("Ann", "Anne")
    a.engine.local_changed()
    site.pump()
    site.publish("person/" + uid, old)       # e.g. a bridge delivering an old retained copy
    site.pump()
    assert a.names() == b.names() == ["Anne"]
    assert decode_person(site.retained["person/" + uid], uid).name == "Anne"


def test_broker_that_lost_everything_deletes_nobody(site, tmp_path, caplog):
    a = Device(site, tmp_path, "door-a")
    r = Device(site, tmp_path, "door-r", writer=False)
    a.connect()
    r.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    site.pump()
    assert r.names() == ["Ann"]
    site.retained.clear()                    # broker restarted without persistence
    r.connect()
    assert r.names() == ["Ann"] and "lost its retained" in r.engine.warning
    assert "until a writer republishes" in r.engine.warning
    assert site.retained == {}               # a reader publishes nothing
    a.connect()
    site.pump()
    assert "republishing it (this device is a writer)" in caplog.text
    assert a.engine.warning is None          # healed: its own manifest is back on the broker
    assert decode_manifest(site.retained["manifest"]).people == {a.engine.state.uid_of("Ann"): 1}
    r.connect()
    assert r.engine.warning is None and r.engine.status()["in_sync"]


def test_partitioned_sites_converge(tmp_path):
    one, two = Site(), Site()
    a, b = Device(one, tmp_path, "door-a"), Device(two, tmp_path, "door-b")
    a.connect()
    b.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    one.pump()
    b.gallery.enroll("Bob", [face(2)], FP)
    b.engine.local_changed()
    two.pump()
    # The bridge comes up: one site's retained messages are delivered to the other and back.
    for suffix, payload in sorted(one.retained.items()):
        two.publish(suffix, payload)
    two.pump()
    for suffix, payload in sorted(two.retained.items()):
        one.publish(suffix, payload)
    one.pump()
    for suffix, payload in sorted(one.retained.items()):
        two.publish(suffix, payload)
    two.pump()
    assert a.names() == b.names() == ["Ann", "Bob"]
    assert decode_manifest(one.retained["manifest"]).revision == decode_manifest(two.retained["manifest"]).revision == 2
    assert a.engine.status()["in_sync"] and b.engine.status()["in_sync"]


def test_bad_messages_change_nothing(site, tmp_path):
    a = Device(site, tmp_path, "door-a")
    a.connect()
    a.gallery.enroll("Ann", [face(1)], FP)
    a.engine.local_changed()
    site.pump()
    version = a.gallery.version
    for uid, payload in (("x" * 65, b"{}"), ("p1", b"not json"), ("p1", b'{"format":1,"person_id":"p1"}')):
        a.engine.on_person(uid, payload)
    a.engine.on_manifest(b"{]")
    a.engine.on_manifest(json.dumps({"format": 1, "gallery": "other", "published_at": 1, "removed": {}}).encode())
    assert a.gallery.version == version and a.names() == ["Ann"]
