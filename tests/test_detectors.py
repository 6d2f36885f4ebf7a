import json
import os

import numpy as np
import pytest

from edge.engines import create_backend
from edge.detectors import create_detector
from edge.detectors.base import letterbox_geometry, nms
from edge.detectors.retinaface import priors
from edge.errors import ConfigError
from edge.imageio import read_image

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "detections.json")
FILES = {"retinaface": "retinaface_mnet025.onnx", "scrfd": "scrfd_500m_bnkps.onnx"}


@pytest.fixture(scope="module", params=sorted(FILES))
def detector(request, model_dir):
    backend = create_backend(os.path.join(model_dir, FILES[request.param]), "onnxruntime")
    return create_detector(request.param, backend)


@pytest.mark.parametrize("image", ["known/obama.jpg", "scenes/two_people.jpg"])
def test_decoder_matches_golden_output(detector, facedata, image):
    with open(GOLDEN) as f:
        golden = json.load(f)[detector.family][image]
    found = detector.detect(read_image(os.path.join(facedata, image)))
    assert len(found) == len(golden)
    found = sorted(found, key=lambda d: d.bbox[0])
    golden = sorted(golden, key=lambda d: d["bbox"][0])
    for d, g in zip(found, golden):
        np.testing.assert_allclose(d.bbox, g["bbox"], atol=2.0)
        np.testing.assert_allclose(d.landmarks, g["landmarks"], atol=2.0)
        assert abs(d.score - g["score"]) < 0.01


def test_landmarks_lie_inside_their_boxes(detector, facedata):
    for d in detector.detect(read_image(os.path.join(facedata, "scenes", "two_people.jpg"))):
        x1, y1, x2, y2 = d.bbox
        assert d.landmarks.shape == (5, 2)
        assert np.all(d.landmarks[:, 0] > x1) and np.all(d.landmarks[:, 0] < x2)
        assert np.all(d.landmarks[:, 1] > y1) and np.all(d.landmarks[:, 1] < y2)
        # left eye is left of the right eye, eyes above the mouth
        assert d.landmarks[0, 0] < d.landmarks[1, 0]
        assert d.landmarks[0, 1] < d.landmarks[3, 1]


def test_same_faces_found_at_original_coordinates_after_downscaling(detector, facedata):
    import cv2
    image = read_image(os.path.join(facedata, "known", "obama.jpg"))
    small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2))
    big_box = np.array(detector.detect(image)[0].bbox)
    small_box = np.array(detector.detect(small)[0].bbox)
    np.testing.assert_allclose(small_box * 2, big_box, atol=12)


def test_blank_image_has_no_faces(detector):
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []


def test_many_faces_in_a_crowd(detector, facedata):
    found = detector.detect(read_image(os.path.join(facedata, "scenes", "bald_guys.jpg")))
    assert len(found) >= 5


def test_letterbox_never_upscales_and_aligns_to_32():
    box = letterbox_geometry(250, 250, 640)
    assert (box.scale, box.width, box.height) == (1.0, 256, 256)
    box = letterbox_geometry(1920, 1080, 640)
    assert box.scale == pytest.approx(640 / 1920.0)
    assert (box.width, box.height) == (640, 384)
    fixed = letterbox_geometry(1920, 1080, 640, fixed=True)
    assert (fixed.width, fixed.height) == (640, 640)


def test_priors_count_matches_feature_maps():
    # 640x640: (80*80 + 40*40 + 20*20) cells x 2 sizes
    assert len(priors(640, 640)) == 2 * (80 * 80 + 40 * 40 + 20 * 20)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.4) == [1, 2]


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ConfigError, match="yolo"):
        create_detector("yolo", None)
