"""The gallery: one SQLite file (WAL) with people, their samples (aligned crops) and the
embeddings of each sample per recognizer fingerprint.

Every change is one transaction committed with synchronous=FULL, so what was reported done
survives a crash or power cut; readers never see half a change. A change may carry the
caller's request id; its response is stored in the same transaction, so a repeated request
is answered again instead of being applied twice.
"""
from edge.gallery.database import GalleryDatabase
from edge.gallery.embeddings import EmbeddingStore
from edge.gallery.people import PeopleStore
# What the callers import from here (one place for them whatever the split)
from edge.gallery.records import (MAX_NAME_LENGTH, REQUEST_HISTORY, REQUEST_MAX_AGE_S, AlreadyDone,  # noqa: F401
                                  GalleryMatrix, Person, Record, Sample, SnapshotSample, StoredSample, Summary,
                                  _vector_bytes, decode_crop, encode_crop, validate_name)
from edge.gallery.snapshot import Snapshot  # noqa: F401


class Gallery(PeopleStore, EmbeddingStore, GalleryDatabase):
    """The gallery by job: the file and its transaction helper (database.py), people and samples
    (people.py), embeddings per model (embeddings.py), snapshots for export (snapshot.py)."""
