"""Test videos made from the shared face photos (never copied into the repository)."""
import os

from edge.demo_media import render_frames, side_by_side, write_video
from edge.imageio import read_image


def photo_video(path, photos, seconds=3.0, fps=15.0, blank_s=0.0, loop_photos=None):
    """A 640x480 video showing each photo (path) for `seconds`, then `blank_s` of empty scene."""
    segments = [(read_image(p), seconds) for p in photos]
    if blank_s:
        segments.append((None, blank_s))
    write_video(path, segments, fps=fps)
    return path


def group_video(path, photos, seconds=3.0, fps=15.0, still=False):
    """Several photos side by side in every frame (several faces). still: the group does not
    move, so the faces keep their tracks however many frames a loaded machine drops."""
    group = side_by_side([read_image(p) for p in photos])
    if not still:
        write_video(path, [(group, seconds)], fps=fps, scale=0.6)
        return path
    import cv2
    frame = render_frames([(group, 1.0 / fps)], fps=fps, scale=0.6)[0]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frame.shape[1], frame.shape[0]))
    for _ in range(int(round(seconds * fps))):
        writer.write(frame)
    writer.release()
    return path


def known(facedata, name):
    return os.path.join(facedata, "known", name)
