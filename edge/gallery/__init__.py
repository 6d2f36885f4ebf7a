"""The local gallery (SQLite): people, face crops, embeddings per model fingerprint."""
import os

from edge.gallery.store import AlreadyDone, Gallery, Record, Sample, validate_name  # noqa: F401


def default_gallery_path():
    # type: () -> str
    env = os.environ.get("FACEEDGE_GALLERY")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "faceedge", "gallery.db")


def open_gallery(path=None):
    # type: (object) -> Gallery
    return Gallery(path or default_gallery_path())
