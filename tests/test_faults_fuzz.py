"""Fuzzing the gallery/set command parser and handler (hypothesis): real models, real gallery.

Every payload must be answered with a JSON response, `ok` with the right result or an error
that is not an "internal error" (a crash caught by the last-resort handler); the gallery
changes only for commands that were answered ok."""
import base64
import json
import os
import struct
import types
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.daemon.config import config_from_dict
from tests.support.commands import command_router
from edge.gallery import Gallery
from tests.broker import Broker, Subscriber
from tests.faults import Daemon, record_figure, wait_until
from tests.support.daemon import write_config

FINGERPRINT = "fp-fuzz"
# Seeded: the same cases on every run and on both Pythons (a CI failure reproduces locally).
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _png(width, height, rows=None):
    """A real PNG: zlib-compressed rows of zeros unless given (a 20000x20000 one is ~1 MB of pixels per 1 kB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = rows if rows is not None else zlib.compress(b"\0" * min((width * 3 + 1) * height, 50000000), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _b64(data):
    return base64.b64encode(data).decode("ascii")


BOMB = _b64(_png(20000, 20000))                # 400 Mpixel: decompression bomb
ABSURD = _b64(_png(1 << 30, 1 << 30, rows=b"x"))  # header says 10^18 pixels
TINY = _b64(_png(1, 1))
FLAT = _b64(_png(64, 64))                      # a real image without a face
NOT_IMAGE = _b64(b"GIF89a" + os.urandom(32))

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(whitelist_categories=("Cc", "Cf", "Zl", "Zp", "Co")), min_size=1, max_size=5),
    st.sampled_from(["../etc/passwd", "a/b", "a\\b", ".", "..", " ", "\u202e", "x\x00y", "obama"]),
    st.text(min_size=90, max_size=400),
    st.just("\U0001F600" * 300),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4) |
                          st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
image_item = st.one_of(st.sampled_from([BOMB, ABSURD, TINY, FLAT, NOT_IMAGE, "data:image/png;base64," + TINY,
                                        "%%%", "", "=" * 9]),
                       st.binary(max_size=300).map(_b64), json_value)
vector = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=200),
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=128, max_size=128),
    st.lists(st.one_of(st.booleans(), st.text(max_size=3), st.none()), max_size=130),
    json_value)
command = st.fixed_dictionaries({}, optional={
    "request_id": st.one_of(st.text(max_size=5), st.text(min_size=190, max_size=260), json_scalar),
    "action": st.one_of(st.sampled_from(["enroll", "negative", "remove", "rename", "list"]), json_value),
    "name": hostile_text | json_value, "new_name": hostile_text | json_value,
    "images": st.one_of(st.lists(image_item, max_size=4), json_value),
    "embeddings": st.one_of(st.lists(vector, max_size=4), json_value),
    "fingerprint": st.one_of(st.just(FINGERPRINT), hostile_text, json_value),
    "extra": json_value,
}).map(lambda c: json.dumps(c).encode("utf-8"))
deep = st.integers(1, 100000).map(lambda n: (b"[" * n) + (b"]" * n)) | \
    st.integers(1, 50000).map(lambda n: (b'{"a":' * n) + b"1" + (b"}" * n))
huge = st.sampled_from([b'{"action": "list", "name": "' + b"x" * 3000000 + b'"}',
                        b'{"action": "enroll", "name": "x", "images": ["' + b"A" * 2000000 + b'"]}'])
payloads = st.one_of(st.binary(max_size=2000), command, deep, huge)
valid = st.fixed_dictionaries({
    "request_id": st.text(alphabet="abcdef0123456789", min_size=8, max_size=16),
    "action": st.just("enroll"),
    "name": st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=30),
    "embeddings": st.lists(st.lists(st.floats(-1, 1, allow_nan=False), min_size=128, max_size=128)
                           .filter(lambda v: np.linalg.norm(v) > 1e-3), min_size=1, max_size=3),
    "fingerprint": st.just(FINGERPRINT)})


@pytest.fixture
def handler(tmp_path, pipeline):
    limits = config_from_dict({"limits": {"max_payload_bytes": 1000000, "max_image_bytes": 200000,
                                          "max_image_pixels": 4000000, "max_images_per_command": 3}}).limits
    gallery = Gallery(str(tmp_path / "fuzz.db"))
    # the router, and the gallery it changes
    yield types.SimpleNamespace(handle=command_router(gallery, pipeline, limits).handle, gallery=gallery)
    gallery.close()


def _state(gallery):
    return gallery.version, gallery.summary(), [(p.name, p.samples, p.negatives) for p in gallery.list_people()]


def _check(handler, payload, stats):
    gallery = handler.gallery
    before = _state(gallery)
    response = json.loads(handler.handle(payload))
    stats["cases"] += 1
    assert set(response) >= {"request_id", "ok"} and isinstance(response["ok"], bool)
    if not response["ok"]:
        assert isinstance(response["error"], str) and response["error"]
        if response["error"].startswith("internal error"):
            stats["crashes"] += 1
        assert not response["error"].startswith("internal error"), (payload[:300], response)
        assert _state(gallery) == before, payload[:300]
    else:
        stats["ok"] += 1
    return response


def test_fuzzed_payloads_are_answered_and_only_valid_ones_change_the_gallery(handler):
    stats = {"cases": 0, "crashes": 0, "ok": 0}

    @settings(FUZZ, max_examples=3000)
    @given(payloads)
    def fuzz(payload):
        response = _check(handler, payload, stats)
        if response["ok"]:
            command = json.loads(payload.decode("utf-8"))
            assert command.get("action") in ("enroll", "negative", "remove", "rename", "list")

    fuzz()
    record_figure("fuzz_gallery_set", cases=stats["cases"], crashes=stats["crashes"], accepted=stats["ok"])
    assert stats["cases"] >= 3000


def test_fuzzed_valid_enrollments_give_the_right_result(handler):
    stats = {"cases": 0, "crashes": 0, "ok": 0}

    @settings(FUZZ, max_examples=300)
    @given(valid)
    def fuzz(command):
        gallery = handler.gallery
        seen = gallery.response_for(command["request_id"])
        people = dict((p.name, p.samples) for p in gallery.list_people())
        response = _check(handler, json.dumps(command).encode("utf-8"), stats)
        if seen is None:
            assert response["ok"], response
            assert response["result"]["added"] == len(command["embeddings"])
            assert dict((p.name, p.samples) for p in gallery.list_people())[command["name"]] == \
                people.get(command["name"], 0) + len(command["embeddings"])
        else:
            # A repeated request id: the same command is answered, not re-applied; another
            # command under that id is refused, never given the old answer (issue 13).
            assert json.loads(seen) == response or (
                not response["ok"] and "already used for another command" in response["error"]), response
            assert dict((p.name, p.samples) for p in gallery.list_people()) == people

    fuzz()
    assert handler.gallery.integrity_check() == "ok"
    record_figure("fuzz_gallery_set_valid", cases=stats["cases"], crashes=stats["crashes"], accepted=stats["ok"])


def test_fuzzed_commands_over_mqtt_leave_the_daemon_up(tmp_path, model_dir):
    sample = []

    @settings(FUZZ, max_examples=300)
    @given(st.one_of(st.binary(max_size=500), command))
    def collect(payload):
        sample.append(payload)

    collect()
    broker = Broker(tmp_path / "mosquitto")
    gallery_path = str(tmp_path / "g.db")
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery_path, broker.port, [])
    daemon = Daemon(config).start()
    sub = Subscriber(broker.port, ["fe/testcam/gallery/response", "fe/testcam/available"])
    try:
        daemon.wait_online(sub)
        for payload in sample:
            sub.client.publish("fe/testcam/gallery/set", payload, qos=1)
        sub.publish("fe/testcam/gallery/set", b'{"request_id": "still-there", "action": "list"}')
        sub.wait_json("fe/testcam/gallery/response", lambda r: r["request_id"] == "still-there", timeout=120)
        wait_until(lambda: len(sub.payloads("fe/testcam/gallery/response")) >= len(sample) + 1, 60, "all answers")
        assert daemon.alive()
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
    answers = sub.json("fe/testcam/gallery/response")
    assert len(answers) == len(sample) + 1
    assert not [a for a in answers if not a["ok"] and a["error"].startswith("internal error")]
    with Gallery(gallery_path) as g:
        assert g.integrity_check() == "ok"
    record_figure("fuzz_over_mqtt", sent=len(sample) + 1, answered=len(answers))
