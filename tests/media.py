"""Test videos made from the shared face photos (never copied into the repository)."""
import os

from edge.demo_media import side_by_side, write_video
from edge.imageio import read_image


def photo_video(path, photos, seconds=3.0, fps=15.0, blank_s=0.0, loop_photos=None):
    """A 640x480 video showing each photo (path) for `seconds`, then `blank_s` of empty scene."""
    segments = [(read_image(p), seconds) for p in photos]
    if blank_s:
        segments.append((None, blank_s))
    write_video(path, segments, fps=fps)
    return path


def group_video(path, photos, seconds=3.0, fps=15.0):
    """Several photos side by side in every frame (several faces)."""
    write_video(path, [(side_by_side([read_image(p) for p in photos]), seconds)], fps=fps, scale=0.6)
    return path


def known(facedata, name):
    return os.path.join(facedata, "known", name)
