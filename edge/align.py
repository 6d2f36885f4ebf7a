"""5-point alignment onto the ArcFace 112x112 template (the warp every recognizer uses)."""
import numpy as np

CROP_SIZE = 112

# insightface's arcface_dst: eyes, nose tip, mouth corners for a 112x112 crop.
ARCFACE_TEMPLATE = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float32)


def similarity_transform(src, dst):
    # type: (np.ndarray, np.ndarray) -> np.ndarray
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst
    (Umeyama 1991). Returns the 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    cov = dst_c.T.dot(src_c) / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u.dot(np.diag(d)).dot(vt)
    variance = (src_c ** 2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    translation = dst_mean - scale * rotation.dot(src_mean)
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = translation
    return matrix


def align_face(image, landmarks, size=CROP_SIZE):
    # type: (np.ndarray, np.ndarray, int) -> np.ndarray
    """The aligned size x size BGR crop for one face's 5 landmarks."""
    import cv2
    template = ARCFACE_TEMPLATE * (size / float(CROP_SIZE))
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
