"""Does an engine compute what the ONNX model computes? Figures and bounds, pure numpy."""
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

VerifyBounds = NamedTuple("VerifyBounds", [
    ("fp32_cosine", float),
    ("fp16_cosine", float),
    ("int8_cosine", float),
    ("min_box_iou", float),        # detector: mean IoU of matched boxes
    ("max_landmark_error", float), # detector: mean landmark distance / box diagonal
    ("min_recall", float),         # detector: share of ONNX detections the engine also finds
])

DEFAULT_BOUNDS = VerifyBounds(fp32_cosine=0.999, fp16_cosine=0.99, int8_cosine=0.98,
                              min_box_iou=0.9, max_landmark_error=0.05, min_recall=0.9)


def row_cosines(a, b):
    # type: (np.ndarray, np.ndarray) -> np.ndarray
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-30), 0.0)


def embedding_agreement(reference, candidate):
    # type: (np.ndarray, np.ndarray) -> Dict[str, float]
    if len(reference) == 0 or len(reference) != len(candidate):
        raise ValueError("need the same non-zero number of embeddings on both sides")
    cos = row_cosines(reference, candidate)
    return {"samples": int(len(cos)), "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


def box_iou(a, b):
    # type: (Sequence[float], Sequence[float]) -> float
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def detection_agreement(reference, candidate):
    # type: (Sequence[Sequence[Any]], Sequence[Sequence[Any]]) -> Dict[str, float]
    """Per image, lists of Detection (bbox, score, landmarks); greedy match by IoU >= 0.5."""
    ious, lm_errors = [], []    # type: List[float], List[float]
    n_ref = n_cand = 0
    for ref_dets, cand_dets in zip(reference, candidate):
        n_ref += len(ref_dets)
        n_cand += len(cand_dets)
        used = set()
        for r in ref_dets:
            best, best_j = 0.0, -1
            for j, c in enumerate(cand_dets):
                if j in used:
                    continue
                iou = box_iou(r[0], c[0])
                if iou > best:
                    best, best_j = iou, j
            if best_j < 0 or best < 0.5:
                continue
            used.add(best_j)
            ious.append(best)
            c = cand_dets[best_j]
            diag = float(np.hypot(r[0][2] - r[0][0], r[0][3] - r[0][1])) or 1.0
            if r[2] is not None and c[2] is not None:
                d = np.linalg.norm(np.asarray(r[2], np.float64) - np.asarray(c[2], np.float64), axis=-1)
                lm_errors.append(float(d.mean() / diag))
    return {
        "images": int(len(reference)),
        "reference_faces": int(n_ref),
        "engine_faces": int(n_cand),
        "recall": float(len(ious) / n_ref) if n_ref else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else (1.0 if n_ref == 0 else 0.0),
        "landmark_error": float(np.mean(lm_errors)) if lm_errors else 0.0,
    }


def judge(role, precision, figures, bounds=DEFAULT_BOUNDS):
    # type: (str, str, Dict[str, Any], VerifyBounds) -> Tuple[bool, str]
    """(accepted, reason) for verification figures."""
    if role == "recognizer" or "recall" not in figures:
        need = {"fp32": bounds.fp32_cosine, "fp16": bounds.fp16_cosine, "int8": bounds.int8_cosine}[precision]
        got = figures["mean_cosine"]
        if got < need:
            return False, "mean output cosine {:.4f} < {:.4f}".format(got, need)
        return True, "mean output cosine {:.4f} >= {:.4f}".format(got, need)
    problems = []
    if figures["recall"] < bounds.min_recall:
        problems.append("recall {:.3f} < {:.3f}".format(figures["recall"], bounds.min_recall))
    if figures["mean_iou"] < bounds.min_box_iou:
        problems.append("mean box IoU {:.3f} < {:.3f}".format(figures["mean_iou"], bounds.min_box_iou))
    if figures["landmark_error"] > bounds.max_landmark_error:
        problems.append("landmark error {:.3f} > {:.3f}".format(figures["landmark_error"], bounds.max_landmark_error))
    if problems:
        return False, ", ".join(problems)
    return True, "recall {:.3f}, mean IoU {:.3f}, landmark error {:.4f}".format(
        figures["recall"], figures["mean_iou"], figures["landmark_error"])


def compare_recognizer(reference_backend, engine_backend, tensors, batch_size=8):
    # type: (Any, Any, np.ndarray, int) -> Dict[str, float]
    """Run the same preprocessed NCHW tensors through both backends; cosine of first outputs."""
    refs, cands = [], []
    for i in range(0, len(tensors), batch_size):
        chunk = np.ascontiguousarray(tensors[i:i + batch_size], np.float32)
        refs.append(np.asarray(reference_backend.run(chunk)[0]).reshape(len(chunk), -1))
        cands.append(np.asarray(engine_backend.run(chunk)[0]).reshape(len(chunk), -1))
    return embedding_agreement(np.concatenate(refs), np.concatenate(cands))


def compare_detector(reference_detector, engine_detector, images):
    # type: (Any, Any, Sequence[np.ndarray]) -> Dict[str, float]
    """Both are run-time Detector objects (same family and options, different backends)."""
    ref = [list(reference_detector.detect(img)) for img in images]
    cand = [list(engine_detector.detect(img)) for img in images]
    return detection_agreement(ref, cand)


def compare_raw_outputs(reference_backend, engine_backend, tensors):
    # type: (Any, Any, np.ndarray) -> Dict[str, float]
    """Cosine of every output tensor, one image at a time; the worst output counts."""
    worst = []
    for i in range(len(tensors)):
        x = np.ascontiguousarray(tensors[i:i + 1], np.float32)
        ref, cand = reference_backend.run(x), engine_backend.run(x)
        worst.append(min(float(row_cosines(r.reshape(1, -1), c.reshape(1, -1))[0]) for r, c in zip(ref, cand)))
    return {"samples": len(worst), "mean_cosine": float(np.mean(worst)), "min_cosine": float(np.min(worst)),
            "compared": "raw outputs"}
