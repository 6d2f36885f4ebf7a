import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge.errors import GalleryError
from edge.gallery import AlreadyDone, Gallery, Sample
from edge.gallery import importers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.RandomState(3)
CROP = RNG.randint(0, 255, (112, 112, 3)).astype(np.uint8)


def vec(seed, dim=128):
    v = np.random.RandomState(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def sample(seed, crop=CROP):
    return Sample(crop, vec(seed), "test-{}".format(seed))


@pytest.fixture
def gallery(tmp_path):
    g = Gallery(str(tmp_path / "gallery.db"))
    yield g
    g.close()


def test_enroll_list_and_matrix(gallery):
    gallery.enroll("alice", [sample(1), sample(2)], "fp")
    gallery.enroll("bob", [sample(3)], "fp")
    gallery.enroll("alice", [sample(4)], "fp")
    people = dict((p.name, p.samples) for p in gallery.list_people())
    assert people == {"alice": 3, "bob": 1}
    matrix = gallery.embeddings("fp")
    assert matrix.vectors.shape == (4, 128) and matrix.names.count("alice") == 3
    np.testing.assert_allclose(np.linalg.norm(matrix.vectors, axis=1), 1.0, atol=1e-5)
    assert gallery.embeddings("other-model").vectors.shape[0] == 0


def test_crops_are_kept_losslessly(gallery):
    gallery.enroll("alice", [sample(1)], "fp")
    stored = list(gallery.samples())
    assert np.array_equal(stored[0].crop, CROP)


def test_file_is_private(tmp_path):
    path = str(tmp_path / "sub" / "g.db")
    Gallery(path).close()
    assert os.stat(path).st_mode & 0o077 == 0


def test_failed_enrollment_changes_nothing(gallery):
    gallery.enroll("alice", [sample(1)], "fp")
    version = gallery.version
    bad = Sample(CROP, np.zeros(128, np.float32), "zero vector")
    with pytest.raises(GalleryError):
        gallery.enroll("bob", [sample(2), bad], "fp")
    assert [p.name for p in gallery.list_people()] == ["alice"]
    assert gallery.version == version
    assert len(gallery.embeddings("fp").names) == 1


@pytest.mark.parametrize("name", ["", "   ", "a/b", "a\\b", "..", ".", "x" * 101, "tab\there", "nul\x00", "bell\x07"])
def test_bad_names_are_refused(gallery, name):
    with pytest.raises(GalleryError, match="name"):
        gallery.enroll(name, [sample(1)], "fp")
    assert gallery.list_people() == []


def test_unicode_names_are_fine(gallery):
    gallery.enroll(u"Zoë Ångström-李", [sample(1)], "fp")
    assert gallery.list_people()[0].name == u"Zoë Ångström-李"


def test_remove_deletes_every_crop_and_embedding(gallery, tmp_path):
    marker = np.full((112, 112, 3), 37, np.uint8)
    gallery.enroll("alice", [Sample(marker, vec(1), "a")], "fp")
    gallery.enroll("bob", [sample(2)], "fp")
    assert gallery.remove("alice") == 1
    assert [p.name for p in gallery.list_people()] == ["bob"]
    assert all(s.person == "bob" for s in gallery.samples())
    db = sqlite3.connect(gallery.path)
    assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(GalleryError, match="no person named 'alice'"):
        gallery.remove("alice")


def test_rename(gallery):
    gallery.enroll("alice", [sample(1)], "fp")
    gallery.enroll("bob", [sample(2)], "fp")
    gallery.rename("alice", "Alice Smith")
    assert sorted(p.name for p in gallery.list_people()) == ["Alice Smith", "bob"]
    with pytest.raises(GalleryError, match="taken"):
        gallery.rename("bob", "Alice Smith")
    with pytest.raises(GalleryError, match="no person"):
        gallery.rename("carol", "dave")


def test_repeated_request_id_is_not_applied_twice(gallery):
    respond = lambda ids: json.dumps({"ok": True, "samples": len(ids)})
    gallery.enroll("alice", [sample(1)], "fp", request_id="r1", respond=respond)
    with pytest.raises(AlreadyDone) as done:
        gallery.enroll("alice", [sample(1)], "fp", request_id="r1", respond=respond)
    assert json.loads(done.value.response) == {"ok": True, "samples": 1}
    assert gallery.list_people()[0].samples == 1
    assert json.loads(gallery.response_for("r1"))["samples"] == 1
    assert gallery.response_for("unknown") is None


def test_version_counts_changes(gallery):
    v0 = gallery.version
    gallery.enroll("alice", [sample(1)], "fp")
    gallery.rename("alice", "al")
    gallery.remove("al")
    assert gallery.version == v0 + 3
    assert gallery.summary().people == 0


def test_reader_never_sees_half_an_enrollment(tmp_path):
    path = str(tmp_path / "g.db")
    writer = Gallery(path)
    reader = Gallery(path)
    seen = set()
    stop = threading.Event()

    def read():
        while not stop.is_set():
            for p in reader.list_people():
                seen.add(p.samples)

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(30):
        writer.enroll("p{}".format(i), [sample(j) for j in range(7)], "fp")
    stop.set()
    thread.join()
    assert seen <= {7}
    writer.close()
    reader.close()


def test_reembed_on_model_change_uses_the_kept_crops(gallery):
    gallery.enroll("alice", [sample(1), sample(2)], "old-model")
    calls = []

    def embed(crops):
        calls.append(len(crops))
        return np.vstack([vec(100 + i, 64) for i in range(len(crops))])

    assert gallery.reembed("new-model", embed, batch=1) == 2
    assert calls == [1, 1]
    assert gallery.embeddings("new-model").vectors.shape == (2, 64)
    assert gallery.reembed("new-model", embed) == 0  # nothing left to do


def test_kill_9_during_bulk_enrollment_loses_nothing_reported(tmp_path):
    path = str(tmp_path / "g.db")
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "gallery_crash_worker.py"), path, "100000"],
                            cwd=REPO, stdout=subprocess.PIPE, universal_newlines=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    committed = []
    for line in proc.stdout:
        committed.append(line.split()[1])
        if len(committed) >= 40:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed += [line.split()[1] for line in proc.stdout.read().splitlines() if line.startswith("committed")]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Gallery(path) as gallery:
        people = dict((p.name, p.samples) for p in gallery.list_people())
        assert set(committed) <= set(people)
        assert set(people.values()) == {5}  # no half enrollment
        gallery.enroll("after-crash", [sample(1)], "fp")  # still writable


def test_importers_and_archive_round_trip(tmp_path, gallery):
    csv_path = tmp_path / "faces.csv"
    csv_path.write_text("name,f1,f2,f3\nann,0.1,0.2,0.3\nann,0.3,0.2,0.1\nben,1,0,0\n")
    pairs = importers.read_csv(str(csv_path))
    assert importers.import_embeddings(gallery, pairs, "import:faces.csv", "faces.csv") == 3
    enc, names = tmp_path / "face_encoding.npy", tmp_path / "face_name.npy"
    np.save(str(enc), np.vstack([vec(1, 3), vec(2, 3)]))
    np.save(str(names), np.array(["cid", "dee"]))
    importers.import_embeddings(gallery, importers.read_npy_pair(str(enc), str(names)), "import:npy", "npy")
    js = tmp_path / "emb.json"
    js.write_text(json.dumps({"eve_1.jpg": [0.0, 1.0, 0.0], "eve_2.jpg": [0.0, 0.9, 0.1]}))
    importers.import_embeddings(gallery, importers.read_json(str(js)), "import:json", "json")
    gallery.enroll("fay", [sample(9)], "fp")
    gallery.add_negative("fay", [sample(10)], "fp")
    people = dict((p.name, (p.samples, p.negatives)) for p in gallery.list_people())
    assert people == {"ann": (2, 0), "ben": (1, 0), "cid": (1, 0), "dee": (1, 0), "eve": (2, 0), "fay": (1, 1)}

    archive = str(tmp_path / "g.tar.gz")
    assert importers.export_archive(gallery, archive) == 9
    with Gallery(str(tmp_path / "copy.db")) as copy:
        assert importers.import_archive(copy, archive) == 9
        assert dict((p.name, (p.samples, p.negatives)) for p in copy.list_people()) == people
        for fp in ("fp", "import:json", "import:faces.csv"):
            np.testing.assert_allclose(np.sort(copy.embeddings(fp).vectors, axis=0),
                                       np.sort(gallery.embeddings(fp).vectors, axis=0), atol=1e-6)
        assert np.array_equal(next(s for s in copy.samples() if s.person == "fay").crop, CROP)


def test_not_a_gallery_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a usable gallery"):
        Gallery(str(path))
