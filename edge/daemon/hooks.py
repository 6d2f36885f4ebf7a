"""What the service hands to its frame hooks (annotated video, live enrollment) after each frame.

Hooks run on the service loop's thread: on_frame must return quickly (no gallery writes, no
waiting on the network); anything slow goes to a thread of the hook's own.
"""
from typing import List, NamedTuple, Optional

from edge.types import Face, Frame, Match

ProcessedFrame = NamedTuple("ProcessedFrame", [
    ("frame", Frame),
    ("faces", List[Face]),
    ("matches", List[Optional[Match]]),   # per face; None when the face was not embedded
    ("track_ids", List[str]),             # per face
    ("identities", List[Optional[str]]),  # per face: what the track's events say (None = unknown)
    ("fps", float),                       # frames processed per second, recent
])


class FrameHook(object):
    """Base class: every method is optional."""

    def on_frame(self, processed):
        # type: (ProcessedFrame) -> None
        pass

    def wants_embeddings(self, camera):
        # type: (str) -> bool
        """True: embed every usable face of this camera (no skipping for decided tracks)."""
        return False

    def tick(self, now):
        # type: (float) -> None
        """Once per loop iteration, frames or not (time.monotonic())."""
        pass

    def close(self):
        # type: () -> None
        """The service is stopping (before the publisher stops)."""
        pass
