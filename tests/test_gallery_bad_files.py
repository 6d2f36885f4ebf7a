"""Gallery files and archives that are not what they claim (issue 13): bounded archive members,
another application's SQLite file left untouched, our table names with another schema, and the
export's temporary file private from its first byte."""
import hashlib
import io
import json
import os
import sqlite3
import stat
import tarfile

import numpy as np
import pytest

from edge.errors import GalleryError
from edge.gallery import Gallery, Sample, archive

CROP = np.full((112, 112, 3), 77, np.uint8)


def vec(seed):
    v = np.random.RandomState(seed).randn(128).astype(np.float32)
    return v / np.linalg.norm(v)


class _Zeros(io.RawIOBase):
    """n zero bytes, read in pieces (so the test never holds them)."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = b"\0" * n
        self.left -= n
        return n


def write_archive(path, members):
    """members: [(name, bytes or int: that many zero bytes)] in order."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = data if isinstance(data, int) else len(data)
            tar.addfile(info, _Zeros(data) if isinstance(data, int) else io.BytesIO(data))


def test_an_archive_claiming_a_huge_manifest_is_refused_before_reading_it(tmp_path):
    path = str(tmp_path / "bomb.tar.gz")
    write_archive(path, [("manifest.json", archive.MAX_MANIFEST_BYTES + 1)])
    assert os.path.getsize(path) < 1024 * 1024          # a small file that claims 64 MB
    with Gallery(str(tmp_path / "g.db")) as gallery:
        version = gallery.version
        with pytest.raises(GalleryError, match="manifest.json claims 67108865 bytes, over the limit"):
            archive.import_archive(gallery, path)
        assert gallery.version == version and gallery.list_people() == []


def test_an_oversized_crop_member_is_refused(tmp_path):
    manifest = {"format": archive.ARCHIVE_FORMAT, "exported": 0, "version": 1, "fingerprints": {},
                "samples": [{"id": 1, "person": "ann", "negative": False, "source": "", "created": 0.0,
                             "crop": "crops/1.png", "embeddings": {}}]}
    path = str(tmp_path / "crop.tar.gz")
    write_archive(path, [("manifest.json", json.dumps(manifest).encode()), ("other/ignored.bin", 5 << 20),
                         ("crops/1.png", archive.MAX_CROP_BYTES + 1)])
    with Gallery(str(tmp_path / "g.db")) as gallery:
        with pytest.raises(GalleryError, match="crops/1.png claims"):
            archive.import_archive(gallery, path)
        assert gallery.list_people() == []


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def sqlite_file(path, *statements):
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return path


def test_another_applications_database_is_refused_and_left_untouched(tmp_path):
    path = sqlite_file(str(tmp_path / "app.db"), "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)",
                       "INSERT INTO customers(email) VALUES ('a@example.com')")
    before = _sha(path)
    with pytest.raises(GalleryError, match=r"not a faceedge gallery: it holds tables faceedge does not know "
                                           r"\(customers\); it was left untouched"):
        Gallery(path)
    assert _sha(path) == before and not os.path.exists(path + "-wal")
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]
    db.close()


def test_our_table_names_with_another_schema_are_one_clear_line(tmp_path):
    path = sqlite_file(str(tmp_path / "other.db"), "CREATE TABLE people (id INTEGER PRIMARY KEY, fullname TEXT)",
                       "CREATE TABLE meta (k TEXT, v TEXT)")
    with pytest.raises(GalleryError) as err:
        Gallery(path)
    message = str(err.value)
    assert "\n" not in message and "not a faceedge gallery" in message and "'meta'" in message


def test_a_gallery_whose_creation_was_cut_short_is_completed(tmp_path):
    from edge.gallery.database import _SCHEMA
    path = sqlite_file(str(tmp_path / "g.db"), _SCHEMA.split(";")[0])      # killed after the first table
    with Gallery(path) as gallery:
        gallery.enroll("ann", [Sample(CROP, vec(1), "a")], "fp")
        assert [p.name for p in gallery.list_people()] == ["ann"]


def test_a_gallery_with_every_table_we_write_still_opens(tmp_path):
    from edge.unknowns.store import UnknownStore
    path = str(tmp_path / "g.db")
    with Gallery(path) as gallery:
        gallery.enroll("ann", [Sample(CROP, vec(1), "a")], "fp")
        UnknownStore(gallery)
    with Gallery(path) as gallery:
        assert [p.name for p in gallery.list_people()] == ["ann"]


class _Watching(object):
    """The real gallery; its snapshot notes the mode of the export's .part file mid-export."""

    def __init__(self, gallery, part, seen):
        self.gallery, self.part, self.seen = gallery, part, seen

    def snapshot(self):
        real = self.gallery.snapshot()
        watcher = self

        class Snap(object):
            def __enter__(self):
                self.snap = real.__enter__()
                return self

            def __exit__(self, *exc):
                return real.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(self.snap, name)

            def samples(self, with_crops=False):
                watcher.seen.append(stat.S_IMODE(os.stat(watcher.part).st_mode))
                return self.snap.samples(with_crops=with_crops)
        return Snap()


def test_export_part_file_is_private_while_it_is_written(tmp_path):
    path = str(tmp_path / "out.tar.gz")
    part = path + ".part"
    with open(part, "wb") as f:              # left by an export killed earlier, world-readable
        f.write(b"old")
    os.chmod(part, 0o644)
    seen = []
    with Gallery(str(tmp_path / "g.db")) as gallery:
        gallery.enroll("ann", [Sample(CROP, vec(1), "a")], "fp")
        assert archive.export_archive(_Watching(gallery, part, seen), path) == 1
    assert seen and all(mode == 0o600 for mode in seen), [oct(m) for m in seen]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and not os.path.exists(part)


def test_the_known_tables_are_those_the_stores_create():
    """database.py's list of tables a gallery may hold follows the schemas of the other stores, so
    a table added there is never taken for another application's."""
    import re
    from edge.gallery import database
    from edge.sharing import state
    from edge.unknowns import store
    created = set()
    for schema in (store._SCHEMA, "".join(state._SCHEMA)):
        created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema))
    assert created == database._OTHER_TABLES
    assert set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", database._SCHEMA)) == set(database._COLUMNS)
