import json
import os
import shutil

import pytest

from tests.cli import faceedge


@pytest.fixture
def known(facedata):
    return os.path.join(facedata, "known")


def test_enroll_then_identify(model_dir, known, facedata, tmp_path):
    db = str(tmp_path / "g.db")
    code, out, err = faceedge("enroll", "obama", os.path.join(known, "obama.jpg"), "--gallery", db, "--model-dir", model_dir)
    assert code == 0 and "enrolled obama" in out, err
    faceedge("enroll", "biden", os.path.join(known, "biden.jpg"), "--gallery", db, "--model-dir", model_dir)
    code, out, err = faceedge("identify", "--json", os.path.join(known, "obama2.jpg"), os.path.join(known, "obama-480p.jpg"),
                              os.path.join(facedata, "known", "alex-lacamoire.png"), "--gallery", db, "--model-dir", model_dir)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["faces"][0]["identity"] == "obama"
    assert records[1]["faces"][0]["identity"] == "obama"
    assert records[2]["faces"][0]["identity"] is None  # a stranger
    face = records[0]["faces"][0]
    assert set(face) == {"bbox", "score", "identity", "similarity", "quality", "unknown_id"}
    assert 0 < face["similarity"] <= 1 and face["quality"]["usable"]


def test_identify_biden_is_not_obama(model_dir, known, tmp_path):
    db = str(tmp_path / "g.db")
    faceedge("enroll", "obama", os.path.join(known, "obama.jpg"), "--gallery", db, "--model-dir", model_dir)
    _, out, _ = faceedge("identify", "--json", os.path.join(known, "biden.jpg"), "--gallery", db, "--model-dir", model_dir)
    assert json.loads(out)["faces"][0]["identity"] is None


def test_enroll_refuses_photo_without_a_usable_face(model_dir, facedata, tmp_path):
    db = str(tmp_path / "g.db")
    code, out, err = faceedge("enroll", "rex", os.path.join(facedata, "scenes", "dogs.jpg"), "--gallery", db,
                              "--model-dir", model_dir)
    assert code == 1 and "dogs.jpg" in err and ("no face" in err or "quality bar" in err)
    assert len([line for line in err.splitlines() if line.startswith("faceedge: error:")]) == 1
    code, out, err = faceedge("enroll", "nobody", str(tmp_path / "missing.jpg"), "--gallery", db, "--model-dir", model_dir)
    assert code == 1 and "no such file" in err
    _, out, _ = faceedge("gallery", "list", "--json", "--gallery", db)
    assert json.loads(out)["people"] == []


def test_enroll_bad_name_is_refused(model_dir, known, tmp_path):
    code, _, err = faceedge("enroll", "../etc", os.path.join(known, "obama.jpg"), "--gallery", str(tmp_path / "g.db"),
                            "--model-dir", model_dir)
    assert code == 1 and "path separators" in err


def test_folder_enrollment_and_gallery_commands(model_dir, facedata, tmp_path):
    lfw = os.path.join(facedata, "lfw-dev", "images")
    people = [d for d in sorted(os.listdir(lfw)) if len(os.listdir(os.path.join(lfw, d))) >= 3][:3]
    folder = tmp_path / "people"
    folder.mkdir()
    for person in people[:2]:
        (folder / person).mkdir()
        for name in sorted(os.listdir(os.path.join(lfw, person)))[:2]:
            shutil.copy(os.path.join(lfw, person, name), str(folder / person / name))
    flat = sorted(os.listdir(os.path.join(lfw, people[2])))[0]
    shutil.copy(os.path.join(lfw, people[2], flat), str(folder / flat))  # DIR/<Name>_<n>.jpg
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    db = str(tmp_path / "g.db")
    code, out, err = faceedge("enroll", "--folder", str(folder), "--gallery", db, "--model-dir", model_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["enrolled"] == {people[0]: 2, people[1]: 2, people[2]: 1}
    assert len(report["errors"]) == 1 and "broken.jpg" in report["errors"][0]

    code, out, _ = faceedge("gallery", "rename", people[0], "Renamed Person", "--gallery", db)
    assert code == 0
    code, out, _ = faceedge("gallery", "remove", people[1], "--gallery", db)
    assert code == 0
    code, _, err = faceedge("gallery", "remove", "Nobody Here", "--gallery", db)
    assert code == 1 and "no person named" in err
    archive = str(tmp_path / "g.tar.gz")
    assert faceedge("gallery", "export", archive, "--gallery", db)[0] == 0
    copy = str(tmp_path / "copy.db")
    assert faceedge("gallery", "import", archive, "--gallery", copy)[0] == 0
    _, out, _ = faceedge("gallery", "list", "--json", "--gallery", copy)
    listed = dict((p["name"], p["samples"]) for p in json.loads(out)["people"])
    assert listed == {"Renamed Person": 2, people[2]: 1}
    # the imported gallery recognises with the same model
    other = os.path.join(lfw, people[0], sorted(os.listdir(os.path.join(lfw, people[0])))[2])
    _, out, _ = faceedge("identify", "--json", other, "--gallery", copy, "--model-dir", model_dir)
    faces = json.loads(out)["faces"]
    assert "Renamed Person" in [f["identity"] for f in faces]


def test_model_change_reembeds_the_kept_crops(model_dir, known, tmp_path):
    db = str(tmp_path / "g.db")
    assert faceedge("enroll", "obama", os.path.join(known, "obama.jpg"), "--gallery", db, "--model-dir", model_dir)[0] == 0
    code, out, err = faceedge("identify", "--json", os.path.join(known, "obama2.jpg"), "--profile", "arcface-mbf",
                              "--gallery", db, "--model-dir", model_dir)
    assert code == 0, err
    assert "re-embedding 1 face crop" in err
    assert json.loads(out)["faces"][0]["identity"] == "obama"
    _, out, _ = faceedge("gallery", "list", "--json", "--gallery", db)
    listed = json.loads(out)
    assert len(listed["fingerprints"]) == 2 and listed["people"][0]["samples"] == 1


def test_seed_embeddings_match_only_under_their_model(model_dir, known, tmp_path):
    code, out, err = faceedge("embed", "--json", os.path.join(known, "obama.jpg"), "--model-dir", model_dir)
    assert code == 0, err
    embedding = json.loads(out)["faces"][0]["embedding"]
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"obama_1.jpg": embedding}))
    # the fingerprint of the default recognizer, as the gallery records it
    ref = str(tmp_path / "ref.db")
    faceedge("enroll", "someone", os.path.join(known, "biden.jpg"), "--gallery", ref, "--model-dir", model_dir)
    fingerprint = json.loads(faceedge("gallery", "list", "--json", "--gallery", ref)[1])["fingerprints"][0]

    tagged, untagged = str(tmp_path / "tagged.db"), str(tmp_path / "untagged.db")
    code, out, err = faceedge("gallery", "import", str(seed), "--fingerprint", fingerprint, "--gallery", tagged)
    assert code == 0 and "imported 1 sample" in out, err
    assert faceedge("gallery", "import", str(seed), "--gallery", untagged)[0] == 0
    photo = os.path.join(known, "obama2.jpg")
    _, out, _ = faceedge("identify", "--json", photo, "--gallery", tagged, "--model-dir", model_dir)
    assert json.loads(out)["faces"][0]["identity"] == "obama"
    _, out, err = faceedge("identify", "--json", photo, "--gallery", untagged, "--model-dir", model_dir)
    assert json.loads(out)["faces"][0]["identity"] is None
    assert "none for the active model" in err


def test_gallery_errors_are_one_line(tmp_path):
    db = str(tmp_path / "g.db")
    for args in (["gallery", "rename", "a", "b"], ["gallery", "import", str(tmp_path / "none.csv")],
                 ["gallery", "import", __file__, "--format", "archive"]):
        code, out, err = faceedge(*(args + ["--gallery", db]))
        assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("faceedge: error:"), (args, err)
