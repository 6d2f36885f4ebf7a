"""Unknown identities: storage bounds, expiry, clustering and the actions, with real face crops."""
import json
import os
import sqlite3

import numpy as np
import pytest

from edge.errors import GalleryError
from edge.gallery import Gallery
from edge.unknowns.index import UnknownIndex, default_matcher
from edge.unknowns.store import KeptFace, UnknownStore
from edge.unknowns.tracks import UnknownTracks

LFW_PEOPLE = ("Gray_Davis", "Ricardo_Lagos", "Vicente_Fox", "Tom_Ridge", "Lindsay_Davenport")


class Clock(object):
    def __init__(self, now=1.7e9):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def faces(pipeline, facedata):
    """person -> four embedded faces (real LFW photos, four different photos each)."""
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    out = {}
    for person in LFW_PEOPLE:
        folder = os.path.join(facedata, "lfw-dev", "images", person)
        out[person] = []
        for name in sorted(os.listdir(folder))[:4]:
            face = largest_face(pipeline.process(read_image(os.path.join(folder, name))))
            assert face is not None and face.embedding is not None, name
            out[person].append(face)
    return out


class Face(object):
    """The parts of edge.types.Face that UnknownTracks reads, for one photo seen in a frame."""
    def __init__(self, face):
        self.crop, self.embedding, self.quality = face.crop, face.embedding, face.quality


def kept(face):
    return KeptFace(face.crop, face.embedding, float(face.quality.score))


def open_unknowns(tmp_path, pipeline, clock=None, **bounds):
    gallery = Gallery(str(tmp_path / "gallery.db"))
    store = UnknownStore(gallery, clock=clock or Clock(), **bounds)
    index = UnknownIndex(store, pipeline.recognizer_fingerprint, default_matcher(pipeline.threshold))
    tracks = UnknownTracks(store, index, pipeline.recognizer_fingerprint)
    return gallery, store, index, tracks


def visit(tracks, track_id, faces, now, camera="door"):
    """One track seeing these faces, announced as unknown, then ended; returns its unknown id."""
    for face in faces:
        tracks.observe(track_id, camera, Face(face), now)
    verdict = tracks.announce(track_id, camera, None, 0.0, now)
    tracks.ended(track_id, now)
    return verdict


def test_same_stranger_same_id_different_strangers_different_ids(tmp_path, pipeline, faces):
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    ids = {}
    for n, person in enumerate(LFW_PEOPLE):
        # first visit: two photos; a later visit: two other photos of the same person
        ids[person] = [visit(tracks, "door-{}a".format(n), faces[person][:2], 100.0 + n).unknown_id,
                       visit(tracks, "door-{}b".format(n), faces[person][2:], 200.0 + n).unknown_id]
    for person, (first, second) in ids.items():
        assert first is not None and first.startswith("u-")
        assert first == second, (person, ids)
    assert len(set(v[0] for v in ids.values())) == len(LFW_PEOPLE)
    listed = dict((i.unknown_id, i) for i in store.identities())
    assert len(listed) == len(LFW_PEOPLE)
    one = listed[ids["Vicente_Fox"][0]]
    assert one.visits == 2 and one.tracks == 2 and one.crops == 4 and one.cameras == ["door"]
    # ids survive a restart: a new store over the same file finds the same identity
    gallery.close()
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    assert visit(tracks, "door-9", faces["Vicente_Fox"][1:3], 300.0).unknown_id == ids["Vicente_Fox"][0]


def test_max_tracks_keeps_the_newest(tmp_path, pipeline, faces):
    clock = Clock()
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline, clock=clock, max_tracks=50)
    every = [f for person in LFW_PEOPLE for f in faces[person]]
    for n in range(200):
        clock.now += 1.0
        store.save_track(None, "door-{}".format(n), "door", clock.now, [kept(every[n % len(every)])],
                         pipeline.recognizer_fingerprint)
    kept_tracks = [r[0] for r in gallery._db.execute("SELECT track_id FROM unknown_tracks ORDER BY seen")]
    assert len(kept_tracks) == 50
    assert kept_tracks[0] == "door-150" and kept_tracks[-1] == "door-199"
    # identities without a kept track went with them; crops too
    assert len(store.identities()) == 50
    assert gallery._db.execute("SELECT COUNT(*) FROM unknown_crops").fetchone()[0] == 50


def test_keep_days_expires_with_the_clock(tmp_path, pipeline, faces):
    clock = Clock()
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline, clock=clock, keep_days=2)
    old = visit(tracks, "door-1", faces["Tom_Ridge"][:2], clock.now).unknown_id
    clock.now += 1.5 * 86400
    new = visit(tracks, "door-2", faces["Gray_Davis"][:2], clock.now).unknown_id
    ignored = visit(tracks, "door-3", faces["Ricardo_Lagos"][:2], clock.now).unknown_id
    store.ignore(ignored)
    assert store.expire() == 0
    clock.now += 1.0 * 86400            # Tom Ridge's visit is now 2.5 days old
    assert store.expire() == 1
    assert sorted(i.unknown_id for i in store.identities()) == sorted([new, ignored])
    clock.now += 10 * 86400             # ignored faces stay until forgotten
    store.expire()
    assert [i.unknown_id for i in store.identities()] == [ignored]


def test_name_moves_the_crops_into_the_gallery(tmp_path, pipeline, faces):
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    unknown_id = visit(tracks, "door-1", faces["Vicente_Fox"][:3], 10.0).unknown_id
    visit(tracks, "door-2", faces["Tom_Ridge"][:3], 11.0)
    version = gallery.version
    ids = store.name(unknown_id, "Vicente", request_id="n1",
                     respond=lambda ids: json.dumps({"request_id": "n1", "added": len(ids)}))
    assert len(ids) == 3 and gallery.version > version
    person = gallery.list_people()[0]
    assert (person.name, person.samples, person.negatives) == ("Vicente", 3, 0)
    crops = [s.crop for s in gallery.samples()]
    assert all(c is not None and c.shape == (112, 112, 3) for c in crops)
    assert json.loads(gallery.response_for("n1"))["added"] == 3
    assert unknown_id not in [i.unknown_id for i in store.identities()]
    with pytest.raises(GalleryError):
        store.name(unknown_id, "Vicente")
    # now he is recognised as an enrolled person by the ordinary matcher
    from edge.matching import Matcher
    matcher = Matcher.from_gallery(gallery, pipeline.recognizer_fingerprint, pipeline.threshold)
    assert matcher.match(faces["Vicente_Fox"][3].embedding[None])[0].identity == "Vicente"


def test_ignore_and_forget(tmp_path, pipeline, faces):
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    unknown_id = visit(tracks, "door-1", faces["Lindsay_Davenport"][:2], 10.0).unknown_id
    assert store.ignore(unknown_id) == 2
    verdict = visit(tracks, "door-2", faces["Lindsay_Davenport"][2:], 20.0)
    assert verdict.ignored and verdict.unknown_id == unknown_id
    assert store.identity(unknown_id).tracks == 1      # the ignored visit was not kept
    # ignored even when the gallery would name the face, unless the gallery is closer
    tracks.observe("door-3", "door", Face(faces["Lindsay_Davenport"][3]), 30.0)
    assert tracks.announce("door-3", "door", "someone", 0.4, 30.0).ignored
    assert store.forget(unknown_id) == 2
    assert store.identities() == []
    assert gallery._db.execute("SELECT COUNT(*) FROM unknown_crops").fetchone()[0] == 0
    assert not visit(tracks, "door-4", faces["Lindsay_Davenport"][2:], 40.0).ignored


def test_disabled_keeps_nothing(tmp_path, pipeline, faces):
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    tracks.enabled = False
    assert visit(tracks, "door-1", faces["Tom_Ridge"][:2], 10.0).unknown_id is None
    assert store.identities() == [] and store.counts() == (0, 0, 0)


def test_named_track_drops_what_it_kept_as_unknown(tmp_path, pipeline, faces):
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    for face in faces["Tom_Ridge"][:2]:
        tracks.observe("door-1", "door", Face(face), 10.0)
    assert tracks.announce("door-1", "door", None, 0.2, 10.0).unknown_id is not None
    assert tracks.announce("door-1", "door", "tom", 0.7, 11.0).unknown_id is None
    assert store.identities() == []


def test_existing_gallery_gets_the_tables(tmp_path, pipeline, faces):
    path = str(tmp_path / "gallery.db")
    gallery = Gallery(path)
    from edge.gallery import Sample
    face = faces["Tom_Ridge"][0]
    gallery.enroll("tom", [Sample(face.crop, face.embedding, "x")], pipeline.recognizer_fingerprint)
    gallery.close()
    db = sqlite3.connect(path)
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name='unknown_tracks'").fetchone()
    db.close()
    gallery = Gallery(path)
    store = UnknownStore(gallery)
    assert store.identities() == [] and gallery.list_people()[0].samples == 1
    UnknownStore(gallery)         # idempotent
    assert gallery.integrity_check() == "ok"


def test_the_cli_lists_names_ignores_and_forgets(tmp_path, pipeline, faces, facedata, model_dir):
    from tests.cli import faceedge
    gallery, store, index, tracks = open_unknowns(tmp_path, pipeline)
    first = visit(tracks, "door-1", faces["Vicente_Fox"][:2], 10.0).unknown_id
    second = visit(tracks, "door-2", faces["Tom_Ridge"][:2], 11.0).unknown_id
    third = visit(tracks, "door-3", faces["Gray_Davis"][:2], 12.0).unknown_id
    gallery.close()
    db = ["--gallery", str(tmp_path / "gallery.db")]
    code, out, err = faceedge("gallery", "unknowns", "--json", "--crops", str(tmp_path / "crops"), *db)
    assert code == 0, err
    listed = json.loads(out)["unknowns"]
    assert [i["unknown_id"] for i in listed] == [third, second, first]
    assert listed[2]["visits"] == 1 and listed[2]["crops"] == 2 and listed[2]["cameras"] == ["door"]
    assert sorted(os.listdir(str(tmp_path / "crops"))) == sorted(i + ".jpg" for i in (first, second, third))
    assert faceedge("gallery", "name", first, "Vicente", *db)[0] == 0
    assert faceedge("gallery", "ignore", second, *db)[0] == 0
    code, out, err = faceedge("gallery", "forget", third, *db)
    assert code == 0 and "2 crops deleted" in out, (out, err)
    code, out, err = faceedge("gallery", "name", third, "Gray", *db)
    assert code == 1 and "no unknown identity" in err
    code, out, err = faceedge("gallery", "unknowns", *db)
    assert out.splitlines()[0].startswith(second) and "ignored" in out.splitlines()[0]
    gallery = Gallery(str(tmp_path / "gallery.db"))
    assert [(p.name, p.samples) for p in gallery.list_people()] == [("Vicente", 2)]
    gallery.close()
    # identify (the CLI's recognize) names a kept stranger by unknown id, at the same threshold
    folder = os.path.join(facedata, "lfw-dev", "images", "Tom_Ridge")
    photo = os.path.join(folder, sorted(os.listdir(folder))[3])
    code, out, err = faceedge("identify", "--json", "--threshold", str(pipeline.threshold), "--model-dir", model_dir,
                              "--no-flip", photo, *db)
    assert code == 0, err
    face = json.loads(out)["faces"][0]
    assert face["identity"] is None and face["unknown_id"] == second, face
