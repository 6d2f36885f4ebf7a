import math

import numpy as np

from edge.align import ARCFACE_TEMPLATE, align_face, similarity_transform


def _apply(matrix, points):
    return points.dot(matrix[:, :2].T) + matrix[:, 2]


def test_template_maps_onto_itself():
    matrix = similarity_transform(ARCFACE_TEMPLATE, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_recovers_a_known_similarity_transform():
    angle, scale, shift = math.radians(17), 2.5, np.array([40.0, -12.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = ARCFACE_TEMPLATE.astype(np.float64).dot(rot.T) + shift
    matrix = similarity_transform(src, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(_apply(matrix, src), ARCFACE_TEMPLATE, atol=1e-4)


def test_least_squares_with_noise_is_close_and_never_reflects():
    rng = np.random.RandomState(0)
    src = ARCFACE_TEMPLATE * 3 + 100 + rng.normal(0, 1.0, ARCFACE_TEMPLATE.shape)
    matrix = similarity_transform(src, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0
    assert np.abs(_apply(matrix, src) - ARCFACE_TEMPLATE).max() < 2.0


def test_align_puts_marked_points_on_the_template():
    image = np.zeros((400, 400, 3), np.uint8)
    landmarks = ARCFACE_TEMPLATE * 2.0 + 100
    for x, y in landmarks:
        image[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2] = 255
    crop = align_face(image, landmarks)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:
        assert crop[int(round(y)), int(round(x))].max() > 100
