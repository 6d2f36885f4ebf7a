"""Per-face quality: size, sharpness and a rough pose, combined into one 0..1 score."""
import math

import numpy as np

from edge.types import Detection, Quality

# Reference points for the combined score, chosen on LFW and the Yale faces:
# faces under 20 px score 0, 80 px and up score 1; a Laplacian variance of 150 on the aligned crop; 60 deg of yaw or pitch is
# unusable (this also rejects animal faces, whose landmarks give an impossible pitch).
_MIN_SIZE = 20.0
_GOOD_SIZE = 80.0
_GOOD_BLUR = 150.0
_MAX_YAW = 60.0


def estimate_pose(landmarks):
    # type: (np.ndarray) -> tuple
    """(yaw, pitch, roll) in degrees from 5 landmarks; a rough geometric estimate."""
    left_eye, right_eye, nose, left_mouth, right_mouth = [np.asarray(p, dtype=np.float64) for p in landmarks]
    eye_vec = right_eye - left_eye
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    eye_dist = max(1e-6, float(np.hypot(eye_vec[0], eye_vec[1])))
    eye_mid = (left_eye + right_eye) / 2.0
    mouth_mid = (left_mouth + right_mouth) / 2.0
    # Rotate into the face frame so roll does not read as yaw.
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    rot = np.array([[c, -s], [s, c]])
    nose_f = rot.dot(nose - eye_mid)
    mouth_f = rot.dot(mouth_mid - eye_mid)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * nose_f[0] / eye_dist))))
    face_height = max(1e-3 * eye_dist, mouth_f[1])
    # On a frontal face the nose tip sits about 55% of the way from eyes to mouth.
    pitch = max(-90.0, min(90.0, (nose_f[1] / face_height - 0.55) * 90.0))
    return yaw, pitch, roll


def sharpness(crop):
    # type: (np.ndarray) -> float
    import cv2
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def assess(detection, crop, min_quality):
    # type: (Detection, np.ndarray, float) -> Quality
    x1, y1, x2, y2 = detection.bbox
    size = float(min(x2 - x1, y2 - y1))
    blur = sharpness(crop)
    yaw, pitch, roll = estimate_pose(detection.landmarks)
    size_score = min(1.0, max(0.0, (size - _MIN_SIZE) / (_GOOD_SIZE - _MIN_SIZE)))
    blur_score = min(1.0, blur / _GOOD_BLUR)
    pose_score = max(0.0, 1.0 - max(abs(yaw), abs(pitch)) / _MAX_YAW)
    score = float((size_score * blur_score * pose_score) ** (1.0 / 3.0))
    return Quality(size=size, blur=blur, yaw=float(yaw), pitch=float(pitch), roll=float(roll),
                   score=score, usable=score >= min_quality)
