"""Turning photos into gallery samples: the largest face, if it is good enough."""
import os
import re
from typing import Iterator, List, Optional, Tuple

import numpy as np

from edge.errors import NoFaceError
from edge.gallery.store import Sample
from edge.pipeline import FacePipeline, largest_face

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_NUMBERED = re.compile(r"^(?P<name>.+?)[_-]\d+$")


def sample_from_image(pipeline, image, source, min_quality=None):
    # type: (FacePipeline, np.ndarray, str, Optional[float]) -> Sample
    """The largest face as a sample; NoFaceError when there is none or it is not good enough
    (min_quality: the caller's bar, e.g. the daemon's after a reload; default the pipeline's)."""
    bar = pipeline.min_quality if min_quality is None else min_quality
    face = largest_face(pipeline.process(image, source, min_quality=bar))
    if face is None:
        raise NoFaceError("no face found in {}".format(source))
    if face.embedding is None:
        q = face.quality
        raise NoFaceError("the face in {} is below the quality bar (quality {:.2f} < {:.2f}: {:.0f} px, "
                          "sharpness {:.0f}, yaw {:.0f} deg, pitch {:.0f} deg); use a sharper, frontal photo"
                          .format(source, q.score, bar, q.size, q.blur, q.yaw, q.pitch))
    return Sample(crop=face.crop, embedding=face.embedding, source=os.path.basename(source))


def folder_layout(root):
    # type: (str) -> List[Tuple[str, str]]
    """(name, path) for DIR/<Name>/*.jpg and DIR/<Name>_<n>.jpg (png, bmp, gif too)."""
    entries = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if os.path.isdir(path):
            for filename in sorted(os.listdir(path)):
                if filename.lower().endswith(IMAGE_EXTENSIONS):
                    entries.append((entry, os.path.join(path, filename)))
        elif entry.lower().endswith(IMAGE_EXTENSIONS):
            stem = os.path.splitext(entry)[0]
            numbered = _NUMBERED.match(stem)
            entries.append((numbered.group("name") if numbered else stem, path))
    return entries


def name_from_image_id(image_id):
    # type: (str) -> str
    stem = os.path.splitext(os.path.basename(image_id))[0]
    numbered = _NUMBERED.match(stem)
    return numbered.group("name") if numbered else stem


def iter_sorted_by_name(entries):
    # type: (List[Tuple[str, str]]) -> Iterator[Tuple[str, List[str]]]
    names = {}  # type: dict
    for name, path in entries:
        names.setdefault(name, []).append(path)
    for name in sorted(names):
        yield name, names[name]
