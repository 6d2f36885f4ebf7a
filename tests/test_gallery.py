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
from edge.gallery import AlreadyDone, Gallery, Record, Sample
from edge.gallery import archive, database, importers, store
from edge.matching import Matcher

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

    path = str(tmp_path / "g.tar.gz")
    assert archive.export_archive(gallery, path) == 9
    with Gallery(str(tmp_path / "copy.db")) as copy:
        assert archive.import_archive(copy, path) == 9
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


def _file_bytes(path):
    data = b""
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(path + suffix):
            with open(path + suffix, "rb") as f:
                data += f.read()
    return data


def test_removed_crops_leave_no_bytes_on_disk(gallery):
    secret = np.random.RandomState(42).randint(0, 255, (112, 112, 3)).astype(np.uint8)
    png = store.encode_crop(secret)
    gallery.enroll("alice", [Sample(secret, vec(1), "a")], "fp")
    gallery.enroll("bob", [sample(2)], "fp")
    # 32-byte pieces of the PNG (a piece may straddle an overflow page boundary)
    pieces = [png[i:i + 32] for i in range(100, len(png) - 32, 997)]  # past the common PNG header
    data = _file_bytes(gallery.path)
    assert sum(p in data for p in pieces) > len(pieces) * 0.9
    gallery.remove("alice")
    data = _file_bytes(gallery.path)
    assert not any(p in data for p in pieces)
    assert vec(1).astype("<f4").tobytes()[:64] not in data
    assert [s.person for s in gallery.samples()] == ["bob"]


def test_request_id_without_respond_stores_a_default_answer(gallery):
    gallery.enroll("alice", [sample(1)], "fp", request_id="r9")
    assert json.loads(gallery.response_for("r9")) == {"request_id": "r9", "ok": True}
    with pytest.raises(AlreadyDone):
        gallery.remove("alice", request_id="r9")
    assert gallery.list_people()[0].name == "alice"


def test_request_history_is_bounded(gallery, monkeypatch):
    monkeypatch.setattr(database, "REQUEST_HISTORY", 5)     # the bound the transaction helper applies
    for i in range(12):
        gallery.enroll("p{}".format(i), [sample(i)], "fp", request_id="req-{}".format(i))
    kept = [i for i in range(12) if gallery.response_for("req-{}".format(i))]
    assert kept == list(range(6, 12))  # the newest (bound + 1, since the bound counts older ones)


def test_embeddings_of_another_length_are_refused_for_the_same_model(gallery):
    gallery.enroll("alice", [sample(1)], "fp")
    with pytest.raises(GalleryError, match="does not fit model fp"):
        gallery.enroll("bob", [Sample(CROP, vec(2, 512), "b")], "fp")
    gallery.enroll("bob", [Sample(CROP, vec(2, 512), "b")], "other-fp")


def test_negative_from_the_gallery_vetoes_in_the_matcher(gallery):
    alice = vec(1)
    stranger = alice + 0.6 * vec(2)
    stranger /= np.linalg.norm(stranger)
    gallery.enroll("alice", [Sample(CROP, alice, "a")], "fp")
    gallery.enroll("bob", [sample(3)], "fp")
    assert Matcher.from_gallery(gallery, "fp", 0.5).match(stranger[None])[0].identity == "alice"
    gallery.add_negative("alice", [Sample(CROP, stranger, "not alice")], "fp")
    assert gallery.list_people()[0].negatives == 1
    matcher = Matcher.from_gallery(gallery, "fp", 0.5)
    vetoed = matcher.match(stranger[None])[0]
    assert vetoed.identity is None and vetoed.vetoed_by_negative
    assert matcher.match(alice[None])[0].identity == "alice"
    with pytest.raises(GalleryError, match="no person named 'carol'"):
        gallery.add_negative("carol", [sample(4)], "fp")


def test_reembed_skips_samples_removed_meanwhile(tmp_path):
    path = str(tmp_path / "g.db")
    with Gallery(path) as gallery, Gallery(path) as other:
        gallery.enroll("alice", [sample(1)], "old")
        gallery.enroll("bob", [sample(2)], "old")

        def embed(crops):
            other.remove("bob")  # another process removes bob while we embed
            return np.vstack([vec(7, 64)] * len(crops))

        gallery.reembed("new", embed)
        assert gallery.embeddings("new").names == ["alice"]
        assert gallery.missing_embeddings("new") == []


def test_reembed_is_resumable_after_a_failure(gallery):
    gallery.enroll("alice", [sample(i) for i in range(5)], "old")
    calls = []

    def flaky(crops):
        calls.append(len(crops))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return np.vstack([vec(50 + i, 64) for i in range(len(crops))])

    with pytest.raises(RuntimeError):
        gallery.reembed("new", flaky, batch=2)
    assert len(gallery.embeddings("new").names) == 2  # the first batch was committed
    assert gallery.reembed("new", flaky, batch=2) == 3
    assert len(gallery.embeddings("new").names) == 5


def test_failed_archive_import_changes_nothing(tmp_path, gallery):
    gallery.enroll("alice", [sample(1)], "fp")
    gallery.enroll("bob", [sample(2)], "fp")
    path = str(tmp_path / "g.tar.gz")
    archive.export_archive(gallery, path)
    with open(path, "rb") as f:
        data = f.read()
    truncated = str(tmp_path / "cut.tar.gz")
    with open(truncated, "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    with Gallery(str(tmp_path / "copy.db")) as copy:
        copy.enroll("carol", [sample(3)], "fp")
        version = copy.version
        with pytest.raises(GalleryError, match="archive"):
            archive.import_archive(copy, truncated)
        assert [p.name for p in copy.list_people()] == ["carol"] and copy.version == version
        with pytest.raises(GalleryError, match="not a readable faceedge gallery archive"):
            archive.import_archive(copy, str(tmp_path / "missing.tar.gz"))


def test_import_records_is_one_change(gallery):
    version = gallery.version
    records = [Record("ann", False, store.encode_crop(CROP), "x", 123.0, {"fp": vec(1)}),
               Record("zed", True, store.encode_crop(CROP), "x", None, {"fp": vec(2)}),   # nobody to veto
               Record("ann", True, None, "x", None, {"fp": vec(3)})]
    assert gallery.import_records(records) == (2, 1)
    assert gallery.version == version + 1
    assert [(p.name, p.samples, p.negatives) for p in gallery.list_people()] == [("ann", 1, 1)]
    bad = [Record("ben", False, None, "x", None, {"fp": vec(1)}), Record("bo/b", False, None, "x", None, {"fp": vec(2)})]
    with pytest.raises(GalleryError, match="path separators"):
        gallery.import_records(bad)
    assert [p.name for p in gallery.list_people()] == ["ann"]


def test_seed_format_variants(tmp_path):
    csv_path = tmp_path / "brackets.csv"
    csv_path.write_text('name,embedding\nann,"[0.1, 0.2, 0.3]"\nben,"0.3 0.2 0.1"\n')
    pairs = importers.read_csv(str(csv_path))
    assert [p[0] for p in pairs] == ["ann", "ben"] and pairs[1][1].tolist() == pytest.approx([0.3, 0.2, 0.1])
    np.save(str(tmp_path / "enc.npy"), np.vstack([vec(1, 4)]))
    np.save(str(tmp_path / "names.npy"), np.array([b"caf\xc3\xa9"]))
    assert importers.read_npy_pair(str(tmp_path / "enc.npy"), str(tmp_path / "names.npy"))[0][0] == u"café"
    np.save(str(tmp_path / "obj.npy"), np.array(["x", None], dtype=object), allow_pickle=True)
    with pytest.raises(GalleryError, match="without pickle"):
        importers.read_npy_pair(str(tmp_path / "enc.npy"), str(tmp_path / "obj.npy"))
    js = tmp_path / "nested.json"
    js.write_text(json.dumps({"dir/Jo_Doe_0003.png": [[0.0, 1.0]], "Jo_Doe_0004.png": [1.0, 0.0]}))
    assert [p[0] for p in importers.read_json(str(js))] == ["Jo_Doe", "Jo_Doe"]
    bad = tmp_path / "bad.csv"
    bad.write_text("ann,0.1,0.2\nben,zero,0.1\n")
    with pytest.raises(GalleryError, match="line 2"):
        importers.read_csv(str(bad))


def test_a_writer_in_another_process_is_waited_for(tmp_path):
    path = str(tmp_path / "g.db")
    Gallery(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")   # e.g. the daemon in the middle of a change
    with Gallery(path, timeout_s=0.05) as impatient:
        with pytest.raises(GalleryError, match="could not be written.*locked"):
            impatient.enroll("alice", [sample(1)], "fp")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    with Gallery(path) as patient:
        patient.enroll("alice", [sample(1)], "fp")   # waits for the lock instead of failing
        assert [p.name for p in patient.list_people()] == ["alice"]
    release.join()
    holder.close()
