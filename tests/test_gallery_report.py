"""The threshold report: leave-one-out over a gallery built from lfw-dev, checked against held-out
strangers; the `report` command and the retained gallery/report over a real broker."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edge.gallery import Gallery, Sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GALLERY_PEOPLE = 150      # people with several photos, up to PHOTOS_EACH each
PHOTOS_EACH = 4
HELD_OUT = 450            # other people, one photo each: ~100k impostor pairs never seen by the report
TARGET_FAR = 1e-3


@pytest.fixture(scope="module")
def pipeline(model_dir):
    from edge.pipeline import open_pipeline
    return open_pipeline("default", model_dir, "onnxruntime", threads=1)


@pytest.fixture(scope="module")
def lfw(facedata, pipeline):
    """{person: [(crop, embedding)]} for the gallery people and the held-out people, embedded once."""
    from edge.batch_reader import map_images
    from edge.pipeline import central_face
    root = os.path.join(facedata, "lfw-dev", "images")
    people = sorted(os.listdir(root))
    photos = dict((p, sorted(os.listdir(os.path.join(root, p)))) for p in people)
    several = [p for p in people if len(photos[p]) >= 2][:GALLERY_PEOPLE]
    others = [p for p in people if p not in set(several)][:HELD_OUT]
    jobs = [(p, os.path.join(root, p, f)) for p in several for f in photos[p][:PHOTOS_EACH]]
    jobs += [(p, os.path.join(root, p, photos[p][0])) for p in others]
    owner = dict((path, person) for person, path in jobs)

    def embed(image, path):
        face = central_face(pipeline.process(image, path), image.shape[1], image.shape[0])
        return None if face is None or face.embedding is None else (face.crop, face.embedding)

    found = {}
    for item, result in map_images([path for _, path in jobs], embed):
        if result is not None:
            found.setdefault(owner[item.path], []).append(result)
    gallery_people = [p for p in several if len(found.get(p, [])) >= 2]
    held_out = [p for p in others if p in found]
    assert len(gallery_people) > 100 and len(held_out) > 400
    return found, gallery_people, held_out


def report_cli(db, *extra):
    out = subprocess.check_output([sys.executable, "-m", "edge", "gallery", "report", "--json", "--gallery", db]
                                  + list(extra), env=dict(os.environ, PYTHONPATH=REPO))
    return json.loads(out.decode("utf-8"))


def test_suggested_threshold_holds_on_held_out_strangers(tmp_path, lfw, pipeline):
    found, gallery_people, held_out = lfw
    db = str(tmp_path / "gallery.db")
    with Gallery(db) as gallery:
        for person in gallery_people:
            gallery.enroll(person, [Sample(c, e, "{}_{}".format(person, i)) for i, (c, e) in enumerate(found[person])],
                           pipeline.recognizer_fingerprint)
    report = report_cli(db, "--target-far", str(TARGET_FAR), "--threshold", str(pipeline.threshold))
    assert report["target_far"] == TARGET_FAR and report["threshold"] == round(pipeline.threshold, 4)
    (model,) = report["models"]
    assert model["fingerprint"] == pipeline.recognizer_fingerprint

    # The report's own figures, recomputed here from the same embeddings.
    vectors = np.stack([e for p in gallery_people for _, e in found[p]])
    labels = np.array([i for i, p in enumerate(gallery_people) for _ in found[p]])
    sims = vectors.dot(vectors.T)
    upper = np.triu(np.ones(sims.shape, bool), 1)
    same = labels[:, None] == labels[None, :]
    impostor, genuine = sims[upper & ~same], sims[upper & same]
    assert model["samples"] == len(vectors) and model["people"] == len(gallery_people)
    assert model["impostor"]["pairs"] == len(impostor) and model["genuine"]["pairs"] == len(genuine)
    assert model["stranger_max"] == pytest.approx(float(impostor.max()), abs=1e-4)
    assert model["genuine"]["median"] == pytest.approx(float(np.median(genuine)), abs=2e-3)
    a, b = model["closest_pair"]["names"]
    assert a != b and model["closest_pair"]["similarity"] == pytest.approx(float(impostor.max()), abs=1e-4)
    assert model["reliable"] and model["note"] is None
    threshold = model["suggested_threshold"]
    gallery_far = float(np.mean(impostor >= threshold))
    assert gallery_far <= TARGET_FAR and model["at_suggested"]["false_accept_rate"] == pytest.approx(gallery_far, abs=1e-6)
    assert model["at_threshold"]["threshold"] == round(pipeline.threshold, 4)

    # Strangers the report never saw: one photo each of other people, every pair of them.
    strangers = np.stack([found[p][0][1] for p in held_out])
    held = strangers.dot(strangers.T)[np.triu(np.ones((len(strangers),) * 2, bool), 1)]
    measured = float(np.mean(held >= threshold))
    print("suggested threshold {:.4f}; held-out FAR {:.2e} over {} impostor pairs (target {:g}); gallery FRR {}"
          .format(threshold, measured, len(held), TARGET_FAR, model["at_suggested"]["false_reject_rate"]))
    assert len(held) * TARGET_FAR >= 50            # enough pairs for the rate to mean something
    assert TARGET_FAR / 3.0 <= measured <= TARGET_FAR * 3.0


def test_small_gallery_says_the_estimate_is_unreliable(tmp_path, lfw, pipeline, model_dir):
    found, gallery_people, _ = lfw
    db = str(tmp_path / "small.db")
    with Gallery(db) as gallery:
        for person in gallery_people[:3]:
            gallery.enroll(person, [Sample(c, e, person) for c, e in found[person]], pipeline.recognizer_fingerprint)
        gallery.add_negative(gallery_people[0], [Sample(*found[gallery_people[5]][0], source="neg")],
                             pipeline.recognizer_fingerprint)
    (model,) = report_cli(db)["models"]
    assert model["people"] == 3 and model["samples"] == sum(len(found[p]) for p in gallery_people[:3])  # no negatives
    assert model["reliable"] is False and "cannot be measured" in model["note"]
    assert model["suggested_threshold"] > model["stranger_max"]
    assert len(model["closest_people"]) == 3

    # Another model's embeddings of the same crops: a report of its own.
    from edge.pipeline import open_pipeline
    arcface = open_pipeline("arcface-mbf", model_dir, "onnxruntime")
    with Gallery(db) as gallery:
        gallery.reembed(arcface.recognizer_fingerprint, arcface.embed_crops)
    models = dict((m["fingerprint"], m) for m in report_cli(db)["models"])
    assert set(models) == {pipeline.recognizer_fingerprint, arcface.recognizer_fingerprint}
    other = models[arcface.recognizer_fingerprint]
    assert other["samples"] == model["samples"] and other["genuine"]["pairs"] == model["genuine"]["pairs"]
    assert other["stranger_max"] != model["stranger_max"]


def test_plot_is_skipped_cleanly_without_matplotlib(tmp_path, lfw, pipeline, monkeypatch):
    from edge.gallery.report import build_report, plot_report
    found, gallery_people, _ = lfw
    with Gallery(str(tmp_path / "g.db")) as gallery:
        for person in gallery_people[:4]:
            gallery.enroll(person, [Sample(c, e, person) for c, e in found[person]], pipeline.recognizer_fingerprint)
        report = build_report(gallery)
    png = str(tmp_path / "report.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert plot_report(report, png) is False and not os.path.exists(png)
    else:
        assert plot_report(report, png) is True and os.path.getsize(png) > 1000
        monkeypatch.setitem(sys.modules, "matplotlib", None)     # as if not installed
        os.remove(png)
        assert plot_report(report, png) is False and not os.path.exists(png)


def test_report_command_and_retained_report_after_changes(tmp_path, broker, pipeline, facedata):
    import base64
    from edge.daemon.config import config_from_dict
    from tests.support.commands import command_router
    from edge.daemon.publisher import Publisher
    from edge.daemon.report_publisher import ReportPublisher
    from tests.broker import Subscriber
    config = config_from_dict({"device": {"id": "door"}, "gallery": {"path": str(tmp_path / "g.db")},
                               "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": "fe",
                                        "queue_dir": str(tmp_path / "q"), "discovery_prefix": ""}})
    publisher = Publisher(config)
    publisher.start()
    sub = Subscriber(broker.port, ["fe/door/gallery/report"])
    try:
        with Gallery(config.gallery.path) as gallery:
            report = ReportPublisher(gallery, lambda p: publisher.publish_raw(publisher.topic("gallery/report"), p,
                                                                             retain=True),
                                     lambda: pipeline.threshold, config.gallery.report_target_far,
                                     config.gallery.report_on_change)
            handler = command_router(gallery, pipeline, config.limits, publisher=publisher, report=report)

            def photo(name):
                with open(os.path.join(facedata, "known", name), "rb") as f:
                    return base64.b64encode(f.read()).decode("ascii")
            for name, files in (("obama", ["obama.jpg", "obama2.jpg"]), ("biden", ["biden.jpg"])):
                answer = json.loads(handler.handle(json.dumps({"request_id": name, "action": "enroll", "name": name,
                                                               "images": [photo(f) for f in files]})))
                assert answer["ok"], answer
            retained = sub.wait_json("fe/door/gallery/report", lambda body: body["version"] == gallery.version)
            (model,) = retained["models"]
            assert model["people"] == 2 and model["samples"] == 3 and model["genuine"]["pairs"] == 1
            assert sorted(model["closest_pair"]["names"]) == ["biden", "obama"]
            assert retained["threshold"] == round(pipeline.threshold, 4)
            answer = json.loads(handler.handle(json.dumps({"request_id": "r", "action": "report", "target_far": 0.01})))
            assert answer["ok"] and answer["result"]["target_far"] == 0.01
            assert answer["result"]["models"][0]["impostor"] == model["impostor"]
            bad = json.loads(handler.handle(json.dumps({"request_id": "b", "action": "report", "target_far": 2})))
            assert bad["ok"] is False and "target_far" in bad["error"]
        late = Subscriber(broker.port, ["fe/door/gallery/report"])
        assert late.wait_for("fe/door/gallery/report") and late.messages[0][2] is True     # retained
        late.close()
    finally:
        sub.close()
        publisher.stop()
