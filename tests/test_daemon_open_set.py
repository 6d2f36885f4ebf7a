"""The daemon as a subprocess over a real broker (issue 12): the open-set rule follows the
gallery's size, and a model change re-embeds the kept crops instead of making everyone a stranger."""
import json
import os

from edge.gallery import Gallery, Sample
from edge.imageio import read_image
from edge.open_set import derive
from edge.pipeline import central_face, largest_face, open_pipeline
from tests.broker import Subscriber
from tests.faults import Daemon, last_stats, wait_until
from tests.media import group_video, known, photo_video
from tests.support.daemon import write_config

ENROLLED_FROM_LFW = 30     # besides obama: more people than the video shows


def _events(sub):
    return sub.json("fe/testcam/events")


def _start(tmp_path, model_dir, broker, video, profile="default"):
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}],
                          extra={"models": {"profile": profile}})
    sub = Subscriber(broker.port, ["fe/testcam/#"])
    daemon = Daemon(config).start()
    daemon.wait_online(sub)
    return daemon, sub


def test_enrolled_with_default_recognised_by_a_daemon_on_arcface_mbf(tmp_path, facedata, model_dir, broker, pipeline):
    gallery = Gallery(str(tmp_path / "gallery.db"))
    face = largest_face(pipeline.process(read_image(known(facedata, "obama.jpg"))))
    gallery.enroll("obama", [Sample(face.crop, face.embedding, "obama.jpg")], pipeline.recognizer_fingerprint)
    # imported as an embedding of the old model without its crop (a seed file): cannot be re-embedded
    gallery.enroll("seeded", [Sample(None, face.embedding, "import")], pipeline.recognizer_fingerprint)
    gallery.close()
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg")], seconds=2.0, blank_s=1.0)
    daemon, sub = _start(tmp_path, model_dir, broker, video, profile="arcface-mbf")
    try:
        wait_until(lambda: any(e["identity"] == "obama" for e in _events(sub)), 180, "obama named on arcface-mbf")
        stats = last_stats(sub, lambda s: s["recognition"]["people"] == 1, limit=120)
        assert stats["recognition"]["reembed"]["done"] == 1 and stats["recognition"]["reembed"]["pending"] == 0
        assert stats["recognition"]["model"] != pipeline.recognizer_fingerprint[:12]
        assert stats["recognition"]["not_usable"]["samples"] == 1
        assert stats["recognition"]["not_usable"]["people"] == ["seeded"]
        state = json.loads(sub.payloads("fe/testcam/gallery/state")[-1])
        assert state["recognition"]["not_usable"]["people"] == ["seeded"]
        assert "re-embedding face crops for model" in daemon.log()
        daemon.wait_notify("STATUS=re-embedding face crops for model")
    finally:
        daemon.stop()
        daemon.cleanup()
        sub.close()
    gallery = Gallery(str(tmp_path / "gallery.db"))
    try:
        assert len(gallery.summary().fingerprints) == 2     # both models' embeddings kept on disk
    finally:
        gallery.close()


def _lfw_people(facedata, count):
    """The first `count` multi-photo lfw-dev people (their first photo), and one singleton stranger."""
    root = os.path.join(facedata, "lfw-dev", "images")
    people, singles = [], []
    for name in sorted(os.listdir(root)):
        photos = sorted(os.listdir(os.path.join(root, name)))
        (people if len(photos) >= 2 else singles).append((name, os.path.join(root, name, photos[0])))
    return people[:count], singles[len(singles) // 2]


def test_daemon_events_follow_the_rule_for_a_larger_gallery(tmp_path, facedata, model_dir, broker, pipeline):
    enrolled, (stranger, stranger_photo) = _lfw_people(facedata, ENROLLED_FROM_LFW)
    gallery = Gallery(str(tmp_path / "gallery.db"))
    fingerprint = pipeline.recognizer_fingerprint
    for name, photo in enrolled + [("obama", known(facedata, "obama.jpg"))]:
        image = read_image(photo)
        face = central_face(pipeline.process(image), image.shape[1], image.shape[0])
        gallery.enroll(name, [Sample(face.crop, face.embedding, os.path.basename(photo))], fingerprint)
    gallery.close()
    people = len(enrolled) + 1
    expected = derive(fingerprint, people, 0.01, flip=False)
    assert expected.source == "table"
    # obama on the left, the stranger on the right, in every frame
    video = group_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg"), stranger_photo], seconds=3.0,
                        still=True)
    daemon, sub = _start(tmp_path, model_dir, broker, video)
    try:
        stats = last_stats(sub, lambda s: s["recognition"].get("people") == people, limit=120)
        rule = stats["recognition"]
        assert rule["source"] == "table" and rule["false_match_rate"] == 0.01
        assert rule["threshold"] == expected.threshold > 0.363     # stricter than the 1:1 threshold
        state = json.loads(sub.payloads("fe/testcam/gallery/state")[-1])
        assert state["recognition"]["threshold"] == expected.threshold and state["recognition"]["people"] == people

        def sides():
            left = [e for e in _events(sub) if e["bbox"][0] + e["bbox"][2] < 640]     # centre x < 320
            right = [e for e in _events(sub) if e["bbox"][0] + e["bbox"][2] >= 640]
            return (left, right) if any(e["identity"] == "obama" for e in left) and right else None
        try:
            left, right = wait_until(sides, 180, "obama named and the stranger's track announced")
        except AssertionError:
            raise AssertionError([(e["type"], e["identity"], e["bbox"]) for e in _events(sub)][:20])
    finally:
        daemon.stop()
        daemon.cleanup()
        sub.close()
    assert all(e["identity"] is None for e in right), (stranger, [e["identity"] for e in right])
    assert all(e["identity"] in ("obama", None) for e in left)
