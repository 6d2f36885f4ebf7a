"""The annotated view: `faceedge run --annotate` against the events it published, and
`faceedge identify --annotate`."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from edge.annotate import KNOWN_COLOUR, UNKNOWN_COLOUR
from edge.gallery import Gallery, Sample
from edge.imageio import read_image
from tests.broker import Subscriber
from tests.media import known, photo_video
from tests.support.daemon import write_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def gallery_path(tmp_path, pipeline, facedata):
    from edge.pipeline import largest_face
    path = str(tmp_path / "gallery.db")
    face = largest_face(pipeline.process(read_image(known(facedata, "obama.jpg"))))
    with Gallery(path) as g:
        g.enroll("obama", [Sample(face.crop, face.embedding, "obama.jpg")], pipeline.recognizer_fingerprint)
    return path


def edge_colour(image, bbox):
    """Median colour of the left and right edges of a drawn box (below its caption)."""
    x1, y1, x2, y2 = [int(round(v)) for v in bbox]
    h, w = image.shape[:2]
    x1, x2 = max(0, min(w - 1, x1)), max(0, min(w - 1, x2))
    ys = range(max(0, y1) + 12, min(h, y2) - 4)
    pixels = [image[y, x] for y in ys for x in (x1, x2)]
    return np.median(np.array(pixels, np.float64), axis=0)


def near(colour, expected, tolerance=60):
    return float(np.abs(np.asarray(colour) - np.asarray(expected, np.float64)).max()) <= tolerance


def read_all(path):
    import cv2
    cap = cv2.VideoCapture(path)
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def test_run_annotate_matches_the_events(tmp_path, broker, model_dir, facedata, gallery_path):
    video = photo_video(str(tmp_path / "v.avi"), [known(facedata, "obama2.jpg"), known(facedata, "biden.jpg")],
                        seconds=2.5, fps=15.0, blank_s=1.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery_path, broker.port,
                          [{"name": "door", "source": video, "type": "file"}])
    out = str(tmp_path / "annotated.avi")
    sub = Subscriber(broker.port, ["fe/testcam/events"])
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", config, "--once", "--annotate", out],
                            env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    err = err.decode("utf-8", "replace")
    assert proc.returncode == 0, err[-2000:]
    processed = int(re.search(r"stopped: (\d+) frames processed", err).group(1))
    sub.wait_for("fe/testcam/events", lambda p: json.loads(p.decode())["type"] == "end", count=2)
    events = sub.json("fe/testcam/events")
    sub.close()

    frames = read_all(out)
    with open(out + ".jsonl") as f:
        index = [json.loads(line) for line in f]
    assert processed > 10 and len(frames) == processed == len(index)
    assert [r["frame"] for r in index] == list(range(processed))
    assert frames[0].shape == (480, 640, 3)

    announced = [e for e in events if e["type"] in ("new", "update")]
    assert {e["identity"] for e in announced} >= {"obama", None}
    for event in announced:
        rows = [r for r in index if r["frame_time"] == event["frame_time"] and r["camera"] == event["camera"]]
        assert len(rows) == 1, event
        (face,) = [f for f in rows[0]["faces"] if f["track_id"] == event["track_id"]]
        assert face["identity"] == event["identity"]
        assert np.allclose(face["bbox"], event["bbox"], atol=0.1)
        colour = edge_colour(frames[rows[0]["frame"]], event["bbox"])
        assert near(colour, KNOWN_COLOUR if event["identity"] else UNKNOWN_COLOUR), (event["identity"], colour)
    # frames without a face have no box
    blank = [r for r in index if not r["faces"]]
    assert blank and all(r["source_index"] >= 0 for r in index)


def test_identify_annotate(tmp_path, model_dir, facedata, gallery_path):
    out = str(tmp_path / "out.jpg")
    photo = known(facedata, "obama2.jpg")
    line = subprocess.check_output(
        [sys.executable, "-m", "edge", "identify", "--json", "--annotate", out, "--gallery", gallery_path,
         "--model-dir", model_dir, "--backend", "onnxruntime", photo], env=dict(os.environ, PYTHONPATH=REPO))
    (face,) = json.loads(line.decode("utf-8"))["faces"]
    assert face["identity"] == "obama"
    annotated, original = read_image(out), read_image(photo)
    assert annotated.shape == original.shape
    assert near(edge_colour(annotated, face["bbox"]), KNOWN_COLOUR)
    assert not near(edge_colour(original, face["bbox"]), KNOWN_COLOUR)
