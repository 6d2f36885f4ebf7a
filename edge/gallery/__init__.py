"""The local gallery (SQLite): people, face crops, embeddings per model fingerprint."""
from edge.gallery.store import AlreadyDone, Gallery, Record, Sample, validate_name  # noqa: F401
from edge.paths import default_gallery_path  # noqa: F401


def open_gallery(path=None):
    # type: (object) -> Gallery
    return Gallery(path or default_gallery_path())
