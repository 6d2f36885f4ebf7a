"""Decode images on a background thread so decoding overlaps inference."""
import threading
from typing import Iterator, NamedTuple, Optional, Sequence

import queue

import numpy as np

from edge.errors import ImageError
from edge.imageio import read_image

LoadedImage = NamedTuple("LoadedImage", [
    ("path", str),
    ("image", Optional[np.ndarray]),
    ("error", Optional[str]),
])


def read_images(paths, prefetch=8):
    # type: (Sequence[str], int) -> Iterator[LoadedImage]
    """Yield each path's image (or its error) in order, decoded ahead on a thread."""
    slots = queue.Queue(maxsize=prefetch)  # type: queue.Queue
    done = object()

    def produce():
        for path in paths:
            try:
                slots.put(LoadedImage(path, read_image(path), None))
            except ImageError as exc:
                slots.put(LoadedImage(path, None, str(exc)))
        slots.put(done)

    thread = threading.Thread(target=produce, name="image-reader")
    thread.daemon = True
    thread.start()
    while True:
        item = slots.get()
        if item is done:
            break
        yield item
