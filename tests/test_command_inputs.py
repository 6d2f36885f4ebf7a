"""Issue 13, bad input on gallery/set: each gets a clear answer, changes nothing it should not,
and keeps memory bounded. The real router, models, photos and SQLite gallery."""
import base64
import json
import logging
import os
import threading

import pytest

from edge.daemon.command_router import MAX_REQUEST_ID
from edge.daemon.config import config_from_dict
from edge.gallery import Gallery
from tests.support.commands import command_router


@pytest.fixture(scope="module")
def pipeline(model_dir):
    from edge.pipeline import open_pipeline
    return open_pipeline("default", model_dir, "onnxruntime")


@pytest.fixture
def gallery(tmp_path):
    g = Gallery(str(tmp_path / "gallery.db"))
    yield g
    g.close()


def _photo(facedata, name):
    with open(os.path.join(facedata, "known", name), "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def _ask(router, payload):
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return json.loads(router.handle(payload))


def test_a_newline_in_a_request_id_cannot_forge_a_log_line(gallery, pipeline, caplog):
    router = command_router(gallery, pipeline, config_from_dict({}).limits)
    with caplog.at_level(logging.WARNING):
        answer = _ask(router, {"request_id": "r1\nERROR faceedge: forged", "action": "nope"})
    assert answer["ok"] is False and answer["request_id"] == "r1\nERROR faceedge: forged"
    text = caplog.text
    assert "\\nERROR faceedge: forged" in text and "\nERROR faceedge: forged" not in text


@pytest.mark.parametrize("payload, words", [
    (b'{"request_id": "\\ud800", "action": "list"}', "not valid Unicode"),
    (b'{"request_id": "r", "action": "remove", "name": "\\udfff"}', "not valid Unicode"),
    (b'{"request_id": "r", "action": "enroll_live", "name": "a", "camera": "door", "seconds": 1' + b"0" * 400 + b"}",
     "digits"),
    (b'{"request_id": "r", "action": "enroll_live", "name": "a", "camera": "door", "seconds": 1e400}', "too large"),
    (b'{"request_id": "r", "action": "list", "x": NaN}', "NaN"),
])
def test_hostile_numbers_and_text_are_clear_errors_not_internal_ones(gallery, pipeline, payload, words):
    router = command_router(gallery, pipeline, config_from_dict({}).limits)
    answer = _ask(router, payload)
    assert answer["ok"] is False and words in answer["error"] and "internal error" not in answer["error"], answer


def test_an_overlong_request_id_is_echoed_truncated(gallery, pipeline):
    router = command_router(gallery, pipeline, config_from_dict({}).limits)
    long_id = "x" * (MAX_REQUEST_ID + 1)
    answer = _ask(router, {"request_id": long_id, "action": "list"})
    assert answer["ok"] is False and answer["request_id"] == long_id[:MAX_REQUEST_ID]


def test_a_request_id_reused_for_another_command_is_refused_even_after_a_restart(tmp_path, pipeline, facedata):
    path = str(tmp_path / "g.db")
    gallery = Gallery(path)
    limits = config_from_dict({}).limits
    enroll = {"request_id": "r1", "action": "enroll", "name": "obama", "images": [_photo(facedata, "obama.jpg")]}
    assert _ask(command_router(gallery, pipeline, limits), enroll)["ok"] is True
    gallery.close()
    gallery = Gallery(path)
    router = command_router(gallery, pipeline, limits)
    assert _ask(router, enroll)["ok"] is True                    # the same command: the old answer
    answer = _ask(router, {"request_id": "r1", "action": "remove", "name": "obama"})
    assert answer["ok"] is False and "already used for another command" in answer["error"]
    assert [p.name for p in gallery.list_people()] == ["obama"]    # nothing was removed
    gallery.close()


def test_a_fingerprint_is_bounded(gallery, pipeline):
    router = command_router(gallery, pipeline, config_from_dict({}).limits)
    answer = _ask(router, {"request_id": "f", "action": "enroll", "name": "m", "fingerprint": "f" * 100000,
                           "embeddings": [[1.0] * 128]})
    assert answer["ok"] is False and "over 256" in answer["error"]
    assert gallery.version == 0


def test_waiting_commands_are_bounded_and_the_rest_refused(gallery, pipeline):
    limits = config_from_dict({"limits": {"max_payload_bytes": 1000000}}).limits
    router = command_router(gallery, pipeline, limits)
    answers = []
    gate = threading.Event()
    real = router.handle

    def slow(payload):          # the worker is busy with the first command while the rest arrive
        gate.wait(30)
        return real(payload)
    router.handle = slow
    router.start(answers.append)
    try:
        big = json.dumps({"request_id": "{}", "action": "list", "pad": "x"}).replace('"x"', '"' + "x" * 900000 + '"')
        for i in range(8):
            router.submit(big.replace('"{}"', '"c{}"'.format(i), 1).encode("utf-8"))
        busy = [json.loads(a) for a in answers]
        assert len(busy) >= 3 and all(not a["ok"] and a["error"].startswith("busy") for a in busy), busy
        assert set(a["request_id"] for a in busy) <= set("c{}".format(i) for i in range(8))
    finally:
        gate.set()
        router.stop()


def test_names_that_merge_or_look_alike_are_said_in_the_answer(gallery, pipeline, facedata):
    router = command_router(gallery, pipeline, config_from_dict({}).limits)
    first = _ask(router, {"request_id": "a", "action": "enroll", "name": "Obama", "images": [_photo(facedata, "obama.jpg")]})
    assert first["ok"] and first["result"]["merged"] is False and first["result"]["confusable_with"] == []
    spaced = _ask(router, {"request_id": "b", "action": "enroll", "name": " Obama ",
                           "images": [_photo(facedata, "obama2.jpg")]})
    assert spaced["ok"] and spaced["result"]["merged"] is True and spaced["result"]["name"] == "Obama"
    cyrillic = _ask(router, {"request_id": "c", "action": "enroll", "name": u"\u041ebama",
                             "images": [_photo(facedata, "obama.jpg")]})
    assert cyrillic["ok"] and cyrillic["result"]["merged"] is False
    assert cyrillic["result"]["confusable_with"] == ["Obama"]
