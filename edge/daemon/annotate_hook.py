"""`faceedge run --annotate FILE / --preview`: every processed frame, drawn (edge/annotate.py)."""
import logging
from typing import Dict, List, Optional

from edge.annotate import AnnotatedWriter, FaceLabel, Preview, annotated_paths, draw
from edge.daemon.hooks import FrameHook, ProcessedFrame

log = logging.getLogger(__name__)


def labels_for(processed, last_similarity=None):
    # type: (ProcessedFrame, Optional[Dict[str, float]]) -> List[FaceLabel]
    """What the daemon knows per face: the track's announced identity and its similarity. A decided
    track is not embedded every frame: it shows its last similarity (last_similarity: track -> value);
    None only for faces below the quality bar."""
    memory = last_similarity if last_similarity is not None else {}
    labels = []
    for face, match, track_id, identity in zip(processed.faces, processed.matches, processed.track_ids,
                                               processed.identities):
        if match is not None:
            memory[track_id] = float(match.similarity)
        similarity = memory.get(track_id) if face.quality.usable else None
        labels.append(FaceLabel(tuple(float(v) for v in face.detection.bbox), identity, similarity, track_id))
    return labels


class AnnotateHook(FrameHook):
    def __init__(self, path, cameras, preview=False, fps=15.0):
        # type: (Optional[str], List[str], bool, float) -> None
        """path: the video to write (None: preview only); one file per camera when there are several."""
        self.paths = annotated_paths(path, cameras) if path else {}
        self.fps = fps
        self.writers = {}  # type: Dict[str, AnnotatedWriter]
        self.preview = Preview("faceedge", enabled=True) if preview else None
        self._similarity = {}  # type: Dict[str, float]

    def on_frame(self, processed):
        # type: (ProcessedFrame) -> None
        frame = processed.frame
        if len(self._similarity) > 1000:    # tracks end; forget old ones now and then
            self._similarity.clear()
        labels = labels_for(processed, self._similarity)
        path = self.paths.get(frame.source)
        if path is not None:
            writer = self.writers.get(frame.source)
            if writer is None:
                writer = self.writers[frame.source] = AnnotatedWriter(path, self.fps)
                log.info("writing the annotated video of camera %s to %s", frame.source, path)
            writer.write(frame.image, labels, processed.fps, frame.source,
                         meta={"camera": frame.source, "source_index": frame.index,
                               "frame_time": round(float(frame.captured_at), 3)})
        if self.preview is not None and self.preview.enabled:
            self.preview.show(draw(frame.image, labels, processed.fps, frame.source))

    def close(self):
        # type: () -> None
        for camera, writer in sorted(self.writers.items()):
            writer.close()
            log.info("annotated video of camera %s: %d frames in %s", camera, writer.frames, writer.path)
        if self.preview is not None:
            self.preview.close()
