import os

import numpy as np

from edge.imageio import read_image
from edge.pipeline import largest_face, open_pipeline
from edge.quality import assess, estimate_pose
from edge.types import Detection


def test_frontal_landmarks_have_small_pose():
    from edge.align import ARCFACE_TEMPLATE
    yaw, pitch, roll = estimate_pose(ARCFACE_TEMPLATE)
    assert abs(yaw) < 5 and abs(pitch) < 15 and abs(roll) < 2


def test_turned_head_has_large_yaw():
    from edge.align import ARCFACE_TEMPLATE
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 15  # nose far to one side
    assert abs(estimate_pose(turned)[0]) > 30


def test_blurred_crop_scores_lower(model_dir, facedata):
    import cv2
    pipeline = open_pipeline("default", model_dir, "onnxruntime")
    face = largest_face(pipeline.process(read_image(os.path.join(facedata, "known", "obama.jpg"))))
    sharp = assess(face.detection, face.crop, 0.35)
    blurred = assess(face.detection, cv2.GaussianBlur(face.crop, (0, 0), 4), 0.35)
    assert sharp.usable and sharp.score > blurred.score
    assert blurred.blur < sharp.blur / 4


def test_tiny_face_is_not_usable():
    from edge.align import ARCFACE_TEMPLATE
    detection = Detection((0, 0, 12, 12), 0.9, ARCFACE_TEMPLATE / 10)
    rng = np.random.RandomState(1)
    crop = rng.randint(0, 255, (112, 112, 3)).astype(np.uint8)
    quality = assess(detection, crop, 0.35)
    assert quality.size == 12 and not quality.usable
