"""Gallery commands: the handler with real models and photos, and over a real broker."""
import base64
import json
import os

import numpy as np
import pytest

from edge.daemon.config import config_from_dict
from edge.daemon.discovery import Discovery
from tests.support.commands import command_router
from edge.daemon.publisher import Publisher
from edge.gallery import Gallery
from tests.broker import Subscriber


def photo(facedata, name):
    with open(os.path.join(facedata, "known", name), "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def limits(**overrides):
    return config_from_dict({"limits": overrides}).limits


def command(**fields):
    return json.dumps(fields).encode("utf-8")


@pytest.fixture
def gallery(tmp_path):
    g = Gallery(str(tmp_path / "gallery.db"))
    yield g
    g.close()


def test_enroll_then_repeat_is_not_applied_twice(gallery, pipeline, facedata):
    changes = []
    handler = command_router(gallery, pipeline, limits(), lambda *a: changes.append(a))
    first = json.loads(handler.handle(command(request_id="r1", action="enroll", name="obama",
                                              images=[photo(facedata, "obama.jpg"), photo(facedata, "obama2.jpg")])))
    assert first["ok"] and first["request_id"] == "r1" and first["result"]["added"] == 2
    version = gallery.version
    again = json.loads(handler.handle(command(request_id="r1", action="enroll", name="obama",
                                              images=[photo(facedata, "obama.jpg"), photo(facedata, "obama2.jpg")])))
    assert again == first
    # The same id for another command is an error, not the old answer (issue 13).
    other = json.loads(handler.handle(command(request_id="r1", action="enroll", name="obama",
                                              images=[photo(facedata, "obama.jpg")])))
    assert other["ok"] is False and "already used for another command" in other["error"]
    assert gallery.version == version and gallery.list_people()[0].samples == 2
    assert changes == [("enroll", "obama")]


def test_remove_rename_negative_list(gallery, pipeline, facedata):
    handler = command_router(gallery, pipeline, limits())
    ok = lambda raw: json.loads(raw)["ok"]
    assert ok(handler.handle(command(action="enroll", name="obama", images=[photo(facedata, "obama.jpg")])))
    assert ok(handler.handle(command(action="negative", name="obama", images=[photo(facedata, "biden.jpg")])))
    listed = json.loads(handler.handle(command(request_id="l", action="list")))
    assert listed["result"]["people"][0]["name"] == "obama"
    assert listed["result"]["people"][0]["samples"] == 1 and listed["result"]["people"][0]["negatives"] == 1
    assert ok(handler.handle(command(action="rename", name="obama", new_name="Barack Obama")))
    assert [p.name for p in gallery.list_people()] == ["Barack Obama"]
    removed = json.loads(handler.handle(command(request_id="rm", action="remove", name="Barack Obama")))
    assert removed["ok"] and removed["result"]["removed_samples"] == 2 and gallery.list_people() == []


def test_enroll_from_embeddings(gallery, pipeline):
    handler = command_router(gallery, pipeline, limits())
    vector = np.random.RandomState(0).randn(128).tolist()
    response = json.loads(handler.handle(command(action="enroll", name="x", embeddings=[vector],
                                                 fingerprint=pipeline.recognizer_fingerprint)))
    assert response["ok"] and gallery.summary().samples == 1


def _bad_commands(facedata):
    good = photo(facedata, "obama.jpg")
    garbage = base64.b64encode(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10).decode("ascii")
    return [
        (b"{not json", None, "not valid JSON"),
        (b"\xff\xfe", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (command(request_id="a", action="explode"), "a", "unknown action"),
        (command(request_id="b", action="enroll", name=5, images=[good]), "b", "\"name\""),
        (command(request_id="c", action="enroll", name="x", images="abc"), "c", "non-empty list"),
        (command(request_id="d", action="enroll", name="x", images=[garbage]), "d", "images[0]"),
        (command(request_id="e", action="enroll", name="x", images=["%%%"]), "e", "base64"),
        (command(request_id="f", action="enroll", name="x\u0007y", images=[good]), "f", "control characters"),
        (command(request_id="g", action="enroll", name="../etc", images=[good]), "g", "path separators"),
        (command(request_id="h", action="enroll", name="x" * 101, images=[good]), "h", "100"),
        (command(request_id="i", action="enroll", name="x", images=[good] * 21), "i", "max_images_per_command"),
        (command(request_id="j", action="enroll", name="x", images=[good], imagez=[]), "j", "unknown key"),
        (command(request_id="k", action="remove", name="nobody"), "k", "no person named"),
        (command(request_id="l", action="enroll", name="x", embeddings=[[0.0] * 128], fingerprint="f"), "l",
         "zero"),
        (command(request_id=7, action="list"), None, "request_id"),
        (command(request_id="m", action="enroll", name="x",
                 images=[base64.b64encode(b"\0" * 5000000).decode("ascii")]), "m", "max_image_bytes"),
        (b'{"request_id": "big", "action": "list", "pad": "' + b"x" * 9000000 + b'"}', "big", "max_payload_bytes"),
        (b'{"action": "list", "pad": "' + b"x" * 9000000 + b'"}', None, "max_payload_bytes"),
    ]


def test_every_bad_command_is_answered_and_changes_nothing(gallery, pipeline, facedata, caplog):
    setup = command_router(gallery, pipeline, limits())
    assert json.loads(setup.handle(command(action="enroll", name="obama", images=[photo(facedata, "obama.jpg")])))["ok"]
    handler = command_router(gallery, pipeline, limits())
    before = (gallery.version, gallery.summary())
    for payload, request_id, words in _bad_commands(facedata):
        response = json.loads(handler.handle(payload))
        assert response["ok"] is False and response["request_id"] == request_id, (payload[:80], response)
        assert words in response["error"], (words, response["error"])
    assert (gallery.version, gallery.summary()) == before
    assert sum(1 for r in caplog.records if r.levelname == "WARNING") >= len(_bad_commands(facedata))


def test_a_photo_without_a_face_is_refused(gallery, pipeline, facedata):
    import cv2
    blank = cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
    handler = command_router(gallery, pipeline, limits())
    response = json.loads(handler.handle(command(request_id="n", action="enroll", name="x",
                                                 images=[base64.b64encode(blank).decode("ascii")])))
    assert not response["ok"] and "no face" in response["error"] and gallery.list_people() == []


# -- over a real broker -------------------------------------------------------------------

class Device(object):
    """Publisher + command router with its worker thread, wired as the daemon does."""

    def __init__(self, port, tmp_path, gallery, pipeline):
        self.config = config_from_dict({"device": {"id": "door"}, "mqtt": {
            "host": "127.0.0.1", "port": port, "queue_dir": str(tmp_path / "queue"), "client_id": "faceedge-door"}})
        self.publisher = Publisher(self.config)
        self.router = command_router(gallery, pipeline, self.config.limits, publisher=self.publisher,
                                     discovery=Discovery(self.config, self.publisher.publish_raw))
        self.publisher.on_command(self.router.submit)
        self.router.start(self.publisher.publish_response)
        self.publisher.start()

    def stop(self):
        self.router.stop()
        self.publisher.stop()


def test_gallery_over_mqtt_with_state_and_home_assistant(broker, tmp_path, gallery, pipeline, facedata):
    sub = Subscriber(broker.port, ["faceedge/door/#", "homeassistant/#"])
    device = Device(broker.port, tmp_path, gallery, pipeline)
    try:
        sub.wait_for("faceedge/door/available", lambda p: p == b"online")
        unknown = "homeassistant/binary_sensor/faceedge_door/unknown_face/config"
        assert json.loads(sub.wait_for(unknown)[0])["state_topic"] == "faceedge/door/person/unknown"
        sub.wait_json("faceedge/door/gallery/state", lambda s: s["people"] == 0)

        enroll = command(request_id="e1", action="enroll", name="obama", images=[photo(facedata, "obama.jpg")])
        sub.publish("faceedge/door/gallery/set", enroll)
        response = sub.wait_json("faceedge/door/gallery/response", lambda r: r["request_id"] == "e1")
        assert response["ok"] and response["result"]["added"] == 1
        assert gallery.list_people()[0].name == "obama"          # committed before the answer
        state = sub.wait_json("faceedge/door/gallery/state", lambda s: s["people"] == 1)
        assert state["names"] == ["obama"] and state["fingerprints"] == [pipeline.recognizer_fingerprint]
        config_topic = "homeassistant/binary_sensor/faceedge_door/person_obama/config"
        entity = json.loads(sub.wait_for(config_topic)[0])
        assert entity["availability_topic"] == "faceedge/door/available"
        assert entity["state_topic"] == "faceedge/door/person/obama"
        assert entity["unique_id"] == "faceedge_door_person_obama"

        sub.publish("faceedge/door/gallery/set", enroll)               # the same request again
        sub.wait_for("faceedge/door/gallery/response", lambda p: json.loads(p)["request_id"] == "e1", count=2)
        assert gallery.list_people()[0].samples == 1

        sub.publish("faceedge/door/gallery/set", b"not json at all")
        bad = sub.wait_json("faceedge/door/gallery/response", lambda r: r["request_id"] is None)
        assert not bad["ok"] and "JSON" in bad["error"]

        device.publisher.publish_presence("obama", True)
        presence = sub.wait_json("faceedge/door/person/obama")
        assert presence["present"] is True and presence["name"] == "obama"

        sub.publish("faceedge/door/gallery/set", command(request_id="r1", action="remove", name="obama"))
        assert sub.wait_json("faceedge/door/gallery/response", lambda r: r["request_id"] == "r1")["ok"]
        sub.wait_for(config_topic, lambda p: p == b"")                # entity deleted
        sub.wait_json("faceedge/door/gallery/state", lambda s: s["people"] == 0 and s["version"] > state["version"])
    finally:
        device.stop()
    # Retained: a newcomer sees the state and the unknown entity, not the removed person.
    late = Subscriber(broker.port, ["faceedge/door/gallery/state", "homeassistant/#"])
    assert json.loads(late.wait_for("faceedge/door/gallery/state")[-1])["people"] == 0
    late.wait_for(unknown)
    assert late.payloads(config_topic) == []
    late.close()
    sub.close()
