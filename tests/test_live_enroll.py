"""Enrollment from a live camera: the sample selection with real faces, the CLI on a video, and
`enroll_live` in the real daemon over a real broker (progress, refusals, interruption)."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from edge.daemon.sample_collector import LiveRequest, SampleCollector
from edge.gallery import Gallery, Sample
from edge.imageio import read_image
from tests.broker import Subscriber
from edge.demo_media import side_by_side, write_video
from tests.media import known, photo_video
from tests.support.daemon import write_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERSON = "Lleyton_Hewitt"      # 41 photos in lfw-dev
PHOTOS = 12


@pytest.fixture(scope="module")
def person_photos(facedata):
    root = os.path.join(facedata, "lfw-dev", "images", PERSON)
    return [os.path.join(root, f) for f in sorted(os.listdir(root))[:PHOTOS]]


@pytest.fixture(scope="module")
def photo_embeddings(pipeline, person_photos):
    from edge.pipeline import largest_face
    return np.stack([largest_face(pipeline.process(read_image(p))).embedding for p in person_photos])


def source_photos(samples_matrix, photo_embeddings):
    """Which of the source photos each stored sample came from (its nearest photo)."""
    return set(np.argmax(samples_matrix.dot(photo_embeddings.T), axis=1).tolist())


def request(name="Hewitt", seconds=60.0, samples=10, min_samples=5):
    return LiveRequest("r", name, "door", seconds, samples, min_samples)


def test_collector_keeps_one_crop_per_distinct_view(pipeline, person_photos, photo_embeddings):
    collector = SampleCollector(request(samples=20), strong_similarity=0.45)
    for path in person_photos[:8]:
        faces = pipeline.process(read_image(path))
        for _ in range(5):              # a person standing still: the same frame again and again
            collector.offer(faces)
    kept = np.stack([f.embedding for f in collector.kept])
    assert 5 <= len(kept) <= 8 and collector.one_face == 40
    assert len(source_photos(kept, photo_embeddings[:8])) == len(kept)     # never two of one photo
    outcome = collector.outcome()
    assert outcome.ok and len(outcome.samples) == len(kept)
    assert all(s.crop.shape == (112, 112, 3) and s.source.startswith("live:door:") for s in outcome.samples)
    assert outcome.progress.frames == 40


def test_collector_skips_a_passer_by(pipeline, facedata, person_photos):
    collector = SampleCollector(request(samples=20, min_samples=3), strong_similarity=0.45, same_person=0.36)
    stranger = pipeline.process(read_image(known(facedata, "biden.jpg")))
    for path in person_photos[:5]:
        collector.offer(pipeline.process(read_image(path)))
        collector.offer(stranger)       # someone else alone in front of the camera for a moment
    outcome = collector.outcome()
    assert outcome.ok and len(outcome.samples) >= 3 and outcome.progress.other_face_frames == 5
    assert max(float(np.dot(stranger[0].embedding, s.embedding)) for s in outcome.samples) < 0.36


def test_collector_refuses_two_faces_and_someone_else(pipeline, facedata, person_photos):
    from edge.matching import Matcher
    pair = side_by_side([read_image(known(facedata, "obama.jpg")), read_image(known(facedata, "biden.jpg"))])
    faces = pipeline.process(pair)
    assert sum(1 for f in faces if f.embedding is not None) == 2
    collector = SampleCollector(request(seconds=0.5), strong_similarity=0.45)
    for _ in range(10):
        collector.offer(faces)
    while not collector.finished():
        pass
    outcome = collector.outcome()
    assert not outcome.ok and outcome.samples == [] and "two or more faces" in outcome.reason

    # The face already is someone in the gallery: refused, naming them.
    face = pipeline.process(read_image(person_photos[0]))
    matrix = np.stack([face[0].embedding])
    matcher = Matcher(matrix, np.array([1]), ["Lleyton"], np.array([False]), 0.36)
    collector = SampleCollector(request(name="Someone"), strong_similarity=0.45)
    for path in person_photos[1:6]:
        faces = pipeline.process(read_image(path))
        collector.offer(faces, matcher.match(np.stack([faces[0].embedding])))
    outcome = collector.outcome()
    assert not outcome.ok and outcome.other_person == "Lleyton" and "'Lleyton'" in outcome.reason
    # ...but more samples for that same person are fine.
    collector = SampleCollector(request(name="Lleyton", min_samples=2), strong_similarity=0.45)
    for path in person_photos[1:6]:
        faces = pipeline.process(read_image(path))
        collector.offer(faces, matcher.match(np.stack([faces[0].embedding])))
    assert collector.outcome().ok


def test_cli_enrolls_from_a_video_camera(tmp_path, model_dir, person_photos, photo_embeddings, pipeline):
    video = photo_video(str(tmp_path / "one.avi"), person_photos, seconds=0.8, fps=15.0)
    db = str(tmp_path / "g.db")
    out = subprocess.check_output(
        [sys.executable, "-m", "edge", "enroll", "Hewitt", "--camera", video, "--gallery", db, "--model-dir",
         model_dir, "--backend", "onnxruntime", "--json", "--seconds", "60", "--samples", "8", "--no-preview"],
        env=dict(os.environ, PYTHONPATH=REPO), stderr=subprocess.PIPE)
    result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    assert result["ok"] and result["result"]["added"] >= 4 and result["summary"]["frames"] > 0
    with Gallery(db) as gallery:
        matrix = gallery.embeddings(pipeline.recognizer_fingerprint)
    assert len(matrix.vectors) == result["result"]["added"] and set(matrix.names) == {"Hewitt"}
    assert len(source_photos(matrix.vectors, photo_embeddings)) == len(matrix.vectors)


def test_cli_refuses_two_faces(tmp_path, model_dir, facedata):
    video = two_people_video(str(tmp_path / "two.avi"), facedata)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "enroll", "Pair", "--camera", video, "--gallery", str(tmp_path / "g.db"),
         "--model-dir", model_dir, "--backend", "onnxruntime", "--json", "--seconds", "3", "--no-preview"],
        env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    result = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    assert result["ok"] is False and "two or more faces were in view" in result["error"]
    assert "two or more faces" in err.decode("utf-8").strip().splitlines()[-1]
    with Gallery(str(tmp_path / "g.db")) as gallery:
        assert gallery.list_people() == []


def two_people_video(path, facedata, seconds=3.0):
    """Two people side by side, both always in view."""
    photos = [read_image(known(facedata, n)) for n in ("obama.jpg", "biden.jpg")]
    write_video(path, [(side_by_side(photos), seconds)], fps=15.0, scale=0.7)
    return path


# ---- the daemon ------------------------------------------------------------------------------

class Daemon(object):
    def __init__(self, config, port):
        self.sub = Subscriber(port, ["fe/testcam/#"])
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config],
                                     env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        # gallery/state is published after the command subscription is made
        self.sub.wait_for("fe/testcam/gallery/state", timeout=120)

    def send(self, **command):
        self.sub.publish("fe/testcam/gallery/set", json.dumps(command))

    def responses(self, request_id):
        return [body for body in self.sub.json("fe/testcam/gallery/response") if body.get("request_id") == request_id]

    def final(self, request_id, timeout=120):
        return self.sub.wait_json("fe/testcam/gallery/response",
                                  lambda b: b.get("request_id") == request_id and "ok" in b, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=120)
        self.sub.close()
        return self.proc.returncode, err.decode("utf-8", "replace")


def test_enroll_live_in_the_daemon(tmp_path, broker, model_dir, person_photos, photo_embeddings, pipeline,
                                   facedata):
    door = photo_video(str(tmp_path / "door.avi"), person_photos, seconds=0.8, fps=15.0, blank_s=2.0)
    hall = two_people_video(str(tmp_path / "hall.avi"), facedata)
    db = str(tmp_path / "gallery.db")
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, db, broker.port,
                          [{"name": "door", "source": door, "type": "file", "loop": True},
                           {"name": "hall", "source": hall, "type": "file", "loop": True, "fps": 3}])

    # 1. Stopped mid-enrollment: nothing half-enrolled.
    daemon = Daemon(config, broker.port)
    try:
        daemon.send(request_id="cut", action="enroll_live", name="Hewitt", camera="door", seconds=120, samples=40)
        daemon.sub.wait_json("fe/testcam/gallery/response",
                             lambda b: b.get("request_id") == "cut" and b.get("progress", {}).get("samples", 0) >= 2,
                             timeout=90)
    finally:
        code, err = daemon.stop()
    assert code == 0, err[-2000:]
    final = [b for b in daemon.responses("cut") if "ok" in b]
    assert len(final) == 1 and final[0]["ok"] is False and "interrupted" in final[0]["error"]
    with Gallery(db) as gallery:
        assert gallery.list_people() == [] and gallery.summary().samples == 0

    # 2. Enrolled from the camera, then named in events; other commands answered meanwhile.
    daemon = Daemon(config, broker.port)
    try:
        daemon.send(request_id="e1", action="enroll_live", name="Hewitt", camera="door", seconds=60, samples=10)
        daemon.send(request_id="ls", action="list")
        listed = daemon.final("ls", timeout=30)
        assert listed["ok"] and not [b for b in daemon.responses("e1") if "ok" in b]   # answered while enrolling
        done = daemon.final("e1")
        assert done["ok"], done
        progress = [b["progress"] for b in daemon.responses("e1") if "progress" in b]
        assert progress[0]["state"] == "started" and len(progress) >= 3
        assert [p["samples"] for p in progress] == sorted(p["samples"] for p in progress)
        added = done["result"]["added"]
        assert added >= 5 and done["result"]["name"] == "Hewitt" and done["summary"]["samples"] == added
        with Gallery(db) as gallery:
            matrix = gallery.embeddings(pipeline.recognizer_fingerprint)
            assert gallery.list_people()[0].samples == added
        assert len(source_photos(matrix.vectors, photo_embeddings)) >= 5      # distinct photos, not copies
        daemon.sub.wait_for("fe/testcam/events", lambda p: json.loads(p.decode())["identity"] == "Hewitt",
                            timeout=120)

        # the same request again: answered from the gallery, not applied twice
        daemon.send(request_id="e1", action="enroll_live", name="Hewitt", camera="door", seconds=60, samples=10)
        daemon.sub.wait_for("fe/testcam/gallery/response", lambda p: json.loads(p.decode()).get("request_id") == "e1"
                            and "ok" in json.loads(p.decode()), count=2, timeout=30)
        assert [b for b in daemon.responses("e1") if "ok" in b][-1] == done

        # two faces in view the whole time: refused, saying why
        daemon.send(request_id="two", action="enroll_live", name="Pair", camera="hall", seconds=4)
        refused = daemon.final("two")
        assert refused["ok"] is False and "two or more faces were in view" in refused["error"]
        summary = refused["summary"]
        assert summary["several_faces_frames"] >= 3 and summary["several_faces_frames"] > summary["one_face_frames"]

        # the face already is someone else: refused, saying who
        daemon.send(request_id="who", action="enroll_live", name="Someone", camera="door", seconds=30)
        refused = daemon.final("who")
        assert refused["ok"] is False and refused["matches"] == "Hewitt" and "'Hewitt'" in refused["error"]

        daemon.send(request_id="bad", action="enroll_live", name="X", camera="garage")
        assert "no camera named 'garage'" in daemon.final("bad", timeout=30)["error"]
    finally:
        code, err = daemon.stop()
    assert code == 0, err[-2000:]
    with Gallery(db) as gallery:
        assert [(p.name, p.samples) for p in gallery.list_people()] == [("Hewitt", added)]
