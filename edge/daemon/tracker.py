"""Per-camera face tracker: boxes of consecutive frames joined by IoU, then centre distance."""
import itertools
from typing import List, Optional, Sequence, Tuple

Box = Tuple[float, float, float, float]

_ids = itertools.count(1)


def iou(a, b):
    # type: (Box, Box) -> float
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a, b):
    # type: (Box, Box) -> float
    """Distance of the centres relative to the older box's size (1.0 = one box width)."""
    size = max(a[2] - a[0], a[3] - a[1], 1.0)
    dx = (a[0] + a[2] - b[0] - b[2]) / 2.0
    dy = (a[1] + a[3] - b[1] - b[3]) / 2.0
    return (dx * dx + dy * dy) ** 0.5 / size


class Track(object):
    __slots__ = ("track_id", "camera", "bbox", "started_mono", "last_seen_mono", "hits")

    def __init__(self, track_id, camera, bbox, now):
        # type: (str, str, Box, float) -> None
        self.track_id = track_id
        self.camera = camera
        self.bbox = bbox
        self.started_mono = now
        self.last_seen_mono = now
        self.hits = 1


class Tracker(object):
    """Greedy association, best pairs first; a lost face's track ends after timeout_s."""

    def __init__(self, camera, iou_threshold=0.3, timeout_s=1.5, max_centre_distance=0.6, reference_gap_s=0.1):
        # type: (str, float, float, float, float) -> None
        """max_centre_distance holds for frames up to reference_gap_s apart; when inference
        falls behind and frames are dropped, a face moves further between the frames seen, so
        the allowance grows with the gap (up to twice)."""
        self.camera = camera
        self.iou_threshold = iou_threshold
        self.timeout_s = timeout_s
        self.max_centre_distance = max_centre_distance
        self.reference_gap_s = reference_gap_s
        self.tracks = []     # type: List[Track]

    def update(self, boxes, now):
        # type: (Sequence[Box], float) -> Tuple[List[Track], List[Track]]
        """Tracks for each box (same order; new tracks for unmatched boxes), and the tracks ended."""
        pairs = []
        for ti, track in enumerate(self.tracks):
            gap = max(0.0, now - track.last_seen_mono)
            reach = self.max_centre_distance * min(2.0, max(1.0, gap / self.reference_gap_s))
            for bi, box in enumerate(boxes):
                overlap = iou(track.bbox, box)
                if overlap >= self.iou_threshold:
                    pairs.append((0, -overlap, ti, bi))
                else:
                    distance = centre_distance(track.bbox, box)
                    if distance <= reach:
                        pairs.append((1, distance, ti, bi))
        pairs.sort()
        assigned = [None] * len(boxes)     # type: List[Optional[Track]]
        used = set()
        for _, _, ti, bi in pairs:
            if ti in used or assigned[bi] is not None:
                continue
            used.add(ti)
            track = self.tracks[ti]
            track.bbox = tuple(boxes[bi])
            track.last_seen_mono = now
            track.hits += 1
            assigned[bi] = track
        for bi, box in enumerate(boxes):
            if assigned[bi] is None:
                track = Track("{}-{}".format(self.camera, next(_ids)), self.camera, tuple(box), now)
                self.tracks.append(track)
                assigned[bi] = track
        return [t for t in assigned if t is not None], self.expire(now)

    def expire(self, now):
        # type: (float) -> List[Track]
        ended = [t for t in self.tracks if now - t.last_seen_mono > self.timeout_s]
        if ended:
            self.tracks = [t for t in self.tracks if now - t.last_seen_mono <= self.timeout_s]
        return ended

    def end_all(self):
        # type: () -> List[Track]
        ended, self.tracks = self.tracks, []
        return ended
