"""A model change: the kept crops are embedded for the new model in the background; a crash
midway loses nothing and the next run resumes; crop-less imports are reported as not usable."""
import os
import signal
import subprocess
import sys

import numpy as np

from edge.daemon.reembed import Reembedder
from edge.gallery import Gallery, Sample
from edge.open_set import RuleSource
from edge.pipeline import open_pipeline
from tests.cli import REPO, faceedge

PEOPLE = ("Abel_Pacheco", "Akhmed_Zakayev", "Amber_Tamblyn")


def _enrolled_gallery(tmp_path, facedata, model_dir):
    """Three people enrolled from lfw-dev photos with the default profile (crops kept)."""
    db = str(tmp_path / "g.db")
    for name in PEOPLE:
        folder = os.path.join(facedata, "lfw-dev", "images", name)
        photos = [os.path.join(folder, f) for f in sorted(os.listdir(folder))][:3]
        code, _, err = faceedge("enroll", name, *photos, "--gallery", db, "--model-dir", model_dir)
        assert code == 0, err
    return db


def test_a_crash_midway_loses_nothing_and_the_next_run_resumes(tmp_path, facedata, model_dir):
    db = _enrolled_gallery(tmp_path, facedata, model_dir)
    arcface = open_pipeline("arcface-mbf", model_dir, "onnxruntime", threads=1)
    fingerprint = arcface.recognizer_fingerprint
    with Gallery(db) as gallery:
        total = len(gallery.missing_embeddings(fingerprint))
        sface_rows = len(gallery.embeddings(gallery.summary().fingerprints[0]).vectors)
    assert total == sface_rows >= 6
    worker = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "reembed_worker.py"), db, model_dir],
                              cwd=REPO, stdout=subprocess.PIPE, universal_newlines=True,
                              env=dict(os.environ, PYTHONPATH=REPO))
    line = worker.stdout.readline()
    assert "re-embedding face crops for model {}: ".format(fingerprint[:12]) in line
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with Gallery(db) as gallery:
        left = len(gallery.missing_embeddings(fingerprint))
        assert 0 < left < total      # some committed, some not: killed midway
        runner = Reembedder(gallery, arcface)
        assert runner.start() and runner.wait(300)
        assert runner.state() == {"pending": 0, "done": left, "running": False, "error": None}
        assert gallery.missing_embeddings(fingerprint) == []
        matrix = gallery.embeddings(fingerprint)
        assert len(matrix.vectors) == total and sorted(set(matrix.names)) == sorted(PEOPLE)
        assert len(gallery.embeddings(gallery.summary().fingerprints[0]).vectors) == sface_rows
        assert not Reembedder(gallery, arcface).start()      # nothing left: no thread


def test_imported_embeddings_of_another_model_are_reported_not_usable(tmp_path):
    rng = np.random.RandomState(2)
    with Gallery(str(tmp_path / "g.db")) as gallery:
        vectors = rng.normal(size=(3, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        gallery.enroll("Seeded", [Sample(None, v, "import") for v in vectors], "f" * 64)
        gallery.enroll("Kept", [Sample(np.zeros((112, 112, 3), np.uint8), vectors[0], "photo")], "f" * 64)
        state = RuleSource(gallery, "a" * 64, model_default=0.4).state()
        assert state["not_usable"]["samples"] == 3 and state["not_usable"]["people"] == ["Seeded"]
        assert "without face crops" in state["not_usable"]["why"]
        assert state["people"] == 0 and state["model"] == "a" * 12
        own = RuleSource(gallery, "f" * 64, model_default=0.4).state()
        assert own["not_usable"]["samples"] == 0 and own["people"] == 2


def test_a_second_run_counts_on_from_the_first(tmp_path, pipeline):
    """After SIGHUP the daemon starts the re-embedder again: stats' done/pending stay right."""
    crop = np.zeros((112, 112, 3), np.uint8)
    with Gallery(str(tmp_path / "g.db")) as gallery:
        gallery.enroll("a", [Sample(crop, np.ones(8, np.float32) / 8 ** 0.5, "a")], "f" * 64)
        runner = Reembedder(gallery, pipeline)
        assert runner.start() and runner.wait(120)
        assert runner.state() == {"pending": 0, "done": 1, "running": False, "error": None}
        gallery.enroll("b", [Sample(crop, np.ones(8, np.float32) / 8 ** 0.5, "b")], "f" * 64)
        assert runner.start() and runner.wait(120)
        assert runner.state() == {"pending": 0, "done": 2, "running": False, "error": None}
        assert runner.total == 2      # the progress line says 2/2, not 2/1 (pending was short midway)
