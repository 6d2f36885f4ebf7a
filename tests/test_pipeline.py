import os

import numpy as np
import pytest

from edge.imageio import read_image
from edge.pipeline import largest_face, open_pipeline


@pytest.fixture(scope="module", params=["default", "arcface-mbf"])
def pipeline(request, model_dir):
    return open_pipeline(request.param, model_dir, "onnxruntime")


def _embedding(pipeline, facedata, name):
    face = largest_face(pipeline.process(read_image(os.path.join(facedata, "known", name))))
    assert face is not None and face.embedding is not None
    return face.embedding


def test_same_person_is_closer_than_different_people(pipeline, facedata):
    obama, obama2 = _embedding(pipeline, facedata, "obama.jpg"), _embedding(pipeline, facedata, "obama2.jpg")
    biden = _embedding(pipeline, facedata, "biden.jpg")
    same = float(obama.dot(obama2))
    assert same > pipeline.threshold
    assert float(obama.dot(biden)) < pipeline.threshold
    assert float(obama2.dot(biden)) < pipeline.threshold


def test_embeddings_are_unit_length(pipeline, facedata):
    assert abs(np.linalg.norm(_embedding(pipeline, facedata, "biden.jpg")) - 1.0) < 1e-4


def test_batched_equals_one_by_one(pipeline, facedata):
    faces = pipeline.process(read_image(os.path.join(facedata, "scenes", "two_people.jpg")))
    crops = [f.crop for f in faces]
    batched = pipeline.embed_crops(crops)
    single = np.vstack([pipeline.embed_crops([c]) for c in crops])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_resolution_robustness(pipeline, facedata):
    reference = _embedding(pipeline, facedata, "obama-1080p.jpg")
    for name in ("obama-480p.jpg", "obama-240p.jpg"):
        assert float(reference.dot(_embedding(pipeline, facedata, name))) > pipeline.threshold


def test_grayscale_photo_is_processed(pipeline, facedata):
    path = os.path.join(facedata, "gray", "subject01", "subject01.normal.gif")
    faces = pipeline.process(read_image(path))
    assert len(faces) == 1 and faces[0].crop.shape == (112, 112, 3)


def test_timings_are_recorded(pipeline, facedata):
    _, timings = pipeline.process_timed(read_image(os.path.join(facedata, "known", "biden.jpg")))
    assert timings.detect_ms > 0 and timings.embed_ms > 0


@pytest.mark.parametrize("profile, flip, expected", [("default", None, False), ("arcface-mbf", None, True),
                                                     ("arcface-mbf", False, False), ("default", True, True)])
def test_flip_follows_the_profile_unless_told(model_dir, profile, flip, expected):
    assert open_pipeline(profile, model_dir, "onnxruntime", flip=flip).recognizer.flip is expected
