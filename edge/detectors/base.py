"""What every detector shares: letterboxing, NMS, and mapping boxes back to the image."""
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np

from edge.backends.base import Backend
from edge.types import Detection

Letterbox = NamedTuple("Letterbox", [
    ("scale", float),          # network pixels per image pixel
    ("width", int),            # network input width
    ("height", int),           # network input height
    ("image_width", int),
    ("image_height", int),
])

STRIDE_ALIGN = 32


def letterbox_geometry(image_width, image_height, det_size, fixed=False, upscale=False):
    # type: (int, int, int, bool, bool) -> Letterbox
    """Scale so the longest side fits det_size (no upscaling unless asked), padding
    right/bottom to a multiple of 32, or to det_size x det_size when the input is fixed."""
    longest = max(image_width, image_height)
    scale = float(det_size) / longest if (longest > det_size or upscale) else 1.0
    width = max(1, int(round(image_width * scale)))
    height = max(1, int(round(image_height * scale)))
    if fixed:
        net_w = net_h = det_size
    else:
        net_w = (width + STRIDE_ALIGN - 1) // STRIDE_ALIGN * STRIDE_ALIGN
        net_h = (height + STRIDE_ALIGN - 1) // STRIDE_ALIGN * STRIDE_ALIGN
    return Letterbox(scale, net_w, net_h, image_width, image_height)


def letterbox_image(image, box):
    # type: (np.ndarray, Letterbox) -> np.ndarray
    import cv2
    height, width = image.shape[:2]
    resized_w = max(1, int(round(width * box.scale)))
    resized_h = max(1, int(round(height * box.scale)))
    if (resized_w, resized_h) != (width, height):
        image = cv2.resize(image, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((box.height, box.width, 3), dtype=np.uint8)
    canvas[:resized_h, :resized_w] = image[:box.height, :box.width]
    return canvas


def nms(boxes, scores, iou_threshold):
    # type: (np.ndarray, np.ndarray, float) -> List[int]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
        iou = inter / np.maximum(1e-9, areas[i] + areas[order[1:]] - inter)
        order = order[1:][iou <= iou_threshold]
    return keep


class Detector(object):
    """One detector family: preprocess (pure; reused by INT8 calibration) and decode."""

    family = "abstract"

    def __init__(self, backend, det_size=640, confidence=0.5, nms_iou=0.4, fixed_input=False,
                 upscale=False, max_faces=0):
        # type: (Backend, int, float, float, bool, bool, int) -> None
        self.backend = backend
        self.det_size = int(det_size)
        self.confidence = float(confidence)
        self.nms_iou = float(nms_iou)
        self.fixed_input = fixed_input
        self.upscale = upscale
        self.max_faces = max_faces

    def geometry(self, image):
        # type: (np.ndarray) -> Letterbox
        height, width = image.shape[:2]
        return letterbox_geometry(width, height, self.det_size, self.fixed_input, self.upscale)

    def preprocess(self, image):
        # type: (np.ndarray) -> Tuple[np.ndarray, Letterbox]
        """HxWx3 BGR uint8 -> (1x3xHxW float32 network input, letterbox)."""
        raise NotImplementedError

    def decode(self, outputs, box):
        # type: (Sequence[np.ndarray], Letterbox) -> Tuple[np.ndarray, np.ndarray, np.ndarray]
        """Raw outputs of one image -> (boxes Nx4, scores N, landmarks Nx5x2) in network pixels,
        before thresholding."""
        raise NotImplementedError

    def detect(self, image):
        # type: (np.ndarray) -> List[Detection]
        tensor, box = self.preprocess(image)
        outputs = self.backend.run(tensor)
        boxes, scores, landmarks = self.decode(outputs, box)
        return self.finish(boxes, scores, landmarks, box)

    def finish(self, boxes, scores, landmarks, box):
        # type: (np.ndarray, np.ndarray, np.ndarray, Letterbox) -> List[Detection]
        mask = scores >= self.confidence
        boxes, scores, landmarks = boxes[mask], scores[mask], landmarks[mask]
        if len(scores) == 0:
            return []
        keep = nms(boxes, scores, self.nms_iou)
        if self.max_faces:
            keep = keep[:self.max_faces]
        inv = 1.0 / box.scale
        boxes = boxes[keep] * inv
        landmarks = landmarks[keep] * inv
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, box.image_width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, box.image_height)
        return [Detection(bbox=tuple(float(v) for v in b), score=float(s),
                          landmarks=l.astype(np.float32))
                for b, s, l in zip(boxes, scores[keep], landmarks)]
