"""Unknown identities in the real daemon (issue 14): strangers' visits from real LFW photos on a
file camera, a real broker, real models; the commands on gallery/set."""
import json
import os
import stat

from tests.broker import Subscriber
from tests.faults import Daemon, wait_until
from tests.support.daemon import write_config

ROOT = "fe/testcam"
STRANGER, OTHER = "Vicente_Fox", "Tom_Ridge"


def lfw(facedata, person, i):
    folder = os.path.join(facedata, "lfw-dev", "images", person)
    return os.path.join(folder, sorted(os.listdir(folder))[i])


def tracks_of(events):
    """track_id -> (first frame_time, last frame_time, unknown ids its events carried, identities)."""
    out = {}
    for e in events:
        first, last, ids, names = out.get(e["track_id"], (e["frame_time"], e["frame_time"], set(), set()))
        if e.get("unknown_id"):
            ids.add(e["unknown_id"])
        names.add(e["identity"])
        out[e["track_id"]] = (min(first, e["frame_time"]), max(last, e["frame_time"]), ids, names)
    return out


def visits(events, gap_s=1.0):
    """The tracks grouped into visits (a visit ends with gap_s of empty scene), in time order:
    [(start, set of unknown ids, set of identities)]."""
    grouped = []
    for first, last, ids, names in sorted(tracks_of(events).values(), key=lambda t: t[0]):
        if grouped and first - grouped[-1][1] < gap_s:
            start, end, all_ids, all_names = grouped[-1]
            grouped[-1] = (start, max(end, last), all_ids | ids, all_names | names)
        else:
            grouped.append((first, last, set(ids), set(names)))
    return [(start, ids, names) for start, _, ids, names in grouped]


def command(sub, body, timeout=60):
    sub.publish(ROOT + "/gallery/set", json.dumps(body))
    answer = sub.wait_json(ROOT + "/gallery/response", lambda r: r.get("request_id") == body["request_id"], timeout)
    return answer


def start_daemon(tmp_path, model_dir, port, segments, extra=None):
    """The daemon on a looped video of (photo path or None, seconds) segments; tracks end 0.5 s after their face."""
    from edge.demo_media import write_video
    from edge.imageio import read_image
    video = str(tmp_path / "door.avi")
    write_video(video, [(read_image(p) if p else None, s) for p, s in segments])
    sections = {"recognition": {"track_timeout_s": 0.5}}
    sections.update(extra or {})
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"), port,
                          [{"name": "door", "source": video, "type": "file", "loop": True}], extra=sections)
    return Daemon(config).start()


def test_a_stranger_keeps_one_unknown_id_then_is_named(tmp_path, facedata, model_dir, broker):
    blank = 1.5
    segments = []
    for path in [lfw(facedata, STRANGER, i) for i in range(3)] + [lfw(facedata, OTHER, 0)]:
        segments += [(path, 1.5), (None, blank)]
    segments += [(None, 4.0), (lfw(facedata, STRANGER, 3), 1.5), (None, blank)]   # the fourth visit
    sub = Subscriber(broker.port, [ROOT + "/#"])
    daemon = start_daemon(tmp_path, model_dir, broker.port, segments)
    try:
        daemon.wait_online(sub)
        # The first four visits: three of the stranger, one of another stranger.
        seen = wait_until(lambda: len(visits(sub.events())) >= 4 and visits(sub.events())[:4], 180,
                          "four visits' events")
        seen = wait_until(lambda: [v for v in visits(sub.events())[:4] if v[1]] == visits(sub.events())[:4]
                          and visits(sub.events())[:4], 60, "unknown ids on the four visits' events")
        assert all(names == {None} for _, _, names in seen), seen
        stranger = [ids for _, ids, _ in seen[:3]]
        counts = {}
        for ids in stranger:
            for unknown_id in ids:
                counts[unknown_id] = counts.get(unknown_id, 0) + 1
        unknown_id, visits_with_it = max(counts.items(), key=lambda kv: kv[1])
        assert visits_with_it >= 2, stranger
        assert unknown_id not in seen[3][1], seen     # the other stranger is someone else
        # The retained summary and the Home Assistant entity's attributes know the id.
        sub.wait_json(ROOT + "/unknowns/state", lambda s: s["unknowns"] >= 2 and s["max_tracks"] == 500
                      and any(i["unknown_id"] == unknown_id and i["visits"] >= 2 for i in s["recent"]))
        unknown_attrs = sub.json(ROOT + "/person/unknown")
        assert any(a.get("present") and a.get("unknown_id", "").startswith("u-") for a in unknown_attrs), unknown_attrs
        listed = command(sub, {"request_id": "list-1", "action": "unknowns", "with_crop": True})
        assert listed["ok"], listed
        mine = [i for i in listed["result"]["unknowns"] if i["unknown_id"] == unknown_id][0]
        assert mine["visits"] >= 2 and mine["cameras"] == ["door"] and len(mine["best_crop"]) > 1000
        # "That was Vicente": his kept faces become samples; the next visits are named.
        named = command(sub, {"request_id": "name-1", "action": "name", "unknown_id": unknown_id,
                              "name": "Vicente"})
        assert named["ok"] and named["result"]["added"] >= 2, named
        again = command(sub, {"request_id": "name-1", "action": "name", "unknown_id": unknown_id,
                              "name": "Vicente"})
        assert again == named                          # answered from the gallery, not applied twice
        sub.wait_json(ROOT + "/gallery/state", lambda s: "Vicente" in s["names"])
        after = max(e["frame_time"] for e in sub.events())
        wait_until(lambda: any(e["identity"] == "Vicente" and e["frame_time"] > after for e in sub.events()), 120,
                   "a later visit named Vicente")
    finally:
        daemon.stop()
        sub.close()
        daemon.cleanup()
    assert stat.S_IMODE(os.stat(str(tmp_path / "gallery.db")).st_mode) == 0o600
    from edge.gallery import Gallery
    gallery = Gallery(str(tmp_path / "gallery.db"))
    try:
        people = dict((p.name, p) for p in gallery.list_people())
        assert people["Vicente"].samples == named["result"]["added"]
        crops = [s.crop for s in gallery.samples() if s.person == "Vicente" and not s.negative]
        assert crops and all(c is not None and c.shape == (112, 112, 3) for c in crops)
    finally:
        gallery.close()


def enroll_photos(path, model_dir, people):
    """A gallery file with these people, one photo each: {name: photo path}."""
    from edge.gallery import Gallery, Sample
    from edge.imageio import read_image
    from edge.pipeline import largest_face, open_pipeline
    pipeline = open_pipeline("default", model_dir, "onnxruntime")
    gallery = Gallery(path)
    try:
        for name, photo in people.items():
            face = largest_face(pipeline.process(read_image(photo)))
            gallery.enroll(name, [Sample(face.crop, face.embedding, photo)], pipeline.recognizer_fingerprint)
    finally:
        gallery.close()
        pipeline.close()


def image_b64(image):
    import base64
    import cv2
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return base64.b64encode(data.tobytes()).decode("ascii")


def test_wrong_turns_a_named_track_unknown_and_recognize_names_a_picture(tmp_path, facedata, model_dir, broker):
    from edge.demo_media import side_by_side
    from edge.imageio import read_image
    from tests.media import group_video, known
    enroll_photos(str(tmp_path / "gallery.db"), model_dir,
                  {"Vicente": lfw(facedata, STRANGER, 0), "obama": known(facedata, "obama.jpg"),
                   "biden": known(facedata, "biden.jpg")})
    # One face that stays in view (a still video, looped): its track stays open.
    video = group_video(str(tmp_path / "door.avi"), [lfw(facedata, STRANGER, 1)], seconds=2.0, still=True)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "gallery.db"),
                          broker.port, [{"name": "door", "source": video, "type": "file", "loop": True}],
                          extra={"recognition": {"track_timeout_s": 1.0}})
    sub = Subscriber(broker.port, [ROOT + "/#"])
    daemon = Daemon(config).start()
    try:
        daemon.wait_online(sub)
        named = sub.wait_json(ROOT + "/events", lambda e: e["identity"] == "Vicente", 120)
        # "Who is in this picture?": two enrolled people and a stranger, composed from three photos.
        picture = side_by_side([read_image(known(facedata, "obama.jpg")), read_image(known(facedata, "biden.jpg")),
                                read_image(lfw(facedata, OTHER, 2))])
        answer = command(sub, {"request_id": "rec-1", "action": "recognize", "images": [image_b64(picture)]})
        assert answer["ok"], answer
        faces = sorted(answer["result"]["images"][0]["faces"], key=lambda f: f["bbox"][0])
        assert [f["identity"] for f in faces] == ["obama", "biden", None], faces
        assert faces[2]["unknown_id"] is None and faces[2]["similarity"] < faces[0]["similarity"]
        assert all(f["usable"] and 0 < f["quality"] <= 1 and len(f["bbox"]) == 4 for f in faces)
        # "That was not Vicente": the track's crops become his negatives; the open track is decided again.
        wrong = command(sub, {"request_id": "wrong-1", "action": "wrong", "event_id": named["event_id"]})
        assert wrong["ok"], wrong
        assert wrong["result"]["name"] == "Vicente" and wrong["result"]["redecided"] is True
        assert wrong["result"]["negatives"] >= 1
        update = sub.wait_json(ROOT + "/events", lambda e: e["track_id"] == named["track_id"]
                               and e["type"] == "update" and e["identity"] is None, 120)
        assert update["unknown_id"] is not None
        listed = command(sub, {"request_id": "list-2", "action": "list"})
        vicente = [p for p in listed["result"]["people"] if p["name"] == "Vicente"][0]
        assert vicente["negatives"] == wrong["result"]["negatives"] and vicente["samples"] == 1
        unchanged = command(sub, {"request_id": "rec-2", "action": "recognize", "images": [image_b64(picture)]})
        assert len(unchanged["result"]["images"][0]["faces"]) == 3
        listed_again = command(sub, {"request_id": "list-3", "action": "list"})
        assert listed_again["result"]["version"] == listed["result"]["version"]    # recognize changed nothing
    finally:
        daemon.stop()
        sub.close()
        daemon.cleanup()


def test_an_ignored_face_makes_no_more_events(tmp_path, facedata, model_dir, broker):
    ignored, other = OTHER, "Gray_Davis"
    segments = [(lfw(facedata, ignored, 0), 1.5), (None, 1.5), (lfw(facedata, ignored, 1), 1.5), (None, 1.5),
                (lfw(facedata, other, 0), 1.5), (None, 1.5)]
    sub = Subscriber(broker.port, [ROOT + "/#"])
    daemon = start_daemon(tmp_path, model_dir, broker.port, segments)
    try:
        daemon.wait_online(sub)
        seen = wait_until(lambda: [v for v in visits(sub.events()) if v[1]][:3] if len(
            [v for v in visits(sub.events()) if v[1]]) >= 3 else None, 180, "three visits with unknown ids")
        face_id, other_id = sorted(seen[0][1])[0], sorted(seen[2][1])[0]
        assert face_id != other_id, seen
        answer = command(sub, {"request_id": "ignore-1", "action": "ignore", "unknown_id": face_id})
        assert answer["ok"] and answer["result"]["ignored"] is True, answer
        since = max(e["frame_time"] for e in sub.events())

        def later_other_visits():
            return [v for v in visits([e for e in sub.events() if e["frame_time"] > since]) if other_id in v[1]]
        # Two visits of the other stranger after it: a whole loop, with both visits of the ignored face.
        wait_until(lambda: len(later_other_visits()) >= 2, 180, "the other stranger's visits after the ignore")
        assert daemon.log().count("is ignored face {}: not reported".format(face_id)) >= 2
        starts = dict((e["track_id"], e["frame_time"]) for e in sub.events() if e["type"] == "new")
        later = [e for e in sub.events() if starts.get(e["track_id"], 0) > since]
        assert later and all(e["identity"] is None and e.get("unknown_id") == other_id for e in later), later
        state = sub.wait_json(ROOT + "/unknowns/state", lambda s: s["ignored"] == 1)
        assert face_id not in [i["unknown_id"] for i in state["recent"]]
        # recognize knows the kept strangers: by their unknown id, and the ignored one as such
        from edge.demo_media import side_by_side
        from edge.imageio import read_image
        picture = side_by_side([read_image(lfw(facedata, ignored, 2)), read_image(lfw(facedata, other, 1))])
        answer = command(sub, {"request_id": "rec-3", "action": "recognize", "images": [image_b64(picture)]})
        faces = sorted(answer["result"]["images"][0]["faces"], key=lambda f: f["bbox"][0])
        assert [(f["identity"], f["unknown_id"], f["ignored"]) for f in faces] == \
            [(None, face_id, True), (None, other_id, False)], faces
    finally:
        daemon.stop()
        sub.close()
        daemon.cleanup()


def run_holding_the_gallery(tmp_path, facedata, pipeline, gallery, photo):
    """The service on one visit of photo (after 1 s of empty scene) while another thread holds the
    gallery from the empty scene until 10 frames after the first event: (events then, all events)."""
    import threading
    from edge.demo_media import write_video
    from edge.imageio import read_image
    from tests.support.daemon import RecordingPublisher, make_service, service_config
    video = str(tmp_path / "v.avi")
    write_video(video, [(None, 1.0), (read_image(photo), 3.0), (None, 1.5)])
    publisher = RecordingPublisher()
    service = make_service(service_config([{"name": "door", "source": video, "type": "file"}]), pipeline, gallery,
                           publisher, once=True)
    held = {}

    def hold():
        wait_until(lambda: service.counters.processed > 0, 120, "frames")     # the empty scene
        with gallery._lock:
            start = service.counters.processed
            wait_until(lambda: publisher.events and service.counters.processed >= start + 10, 120, "an event")
            held["events"] = list(publisher.events)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        service.run()
    finally:
        holder.join()
    return held["events"], publisher


def test_the_loop_does_not_wait_for_a_busy_gallery(tmp_path, facedata, pipeline):
    """The unknowns' tables are in the gallery file: while another thread holds the gallery (an
    enrollment committing), frames go on and events go out without a new id; the track's end,
    once the gallery is free, carries it."""
    from edge.gallery import Gallery
    gallery = Gallery(str(tmp_path / "gallery.db"))
    try:
        held, publisher = run_holding_the_gallery(tmp_path, facedata, pipeline, gallery, lfw(facedata, OTHER, 0))
    finally:
        gallery.close()
    assert [e["type"] for e in held] == ["new"] and held[0]["unknown_id"] is None
    ends = [e for e in publisher.events if e["type"] == "end"]
    assert len(ends) == 1 and ends[0]["unknown_id"] == "u-1", publisher.events
    assert any(json.loads(payload)["unknowns"] == 1 for topic, payload, _ in publisher.raw
               if topic == "test/unknowns/state")


def test_an_ignored_face_seen_while_the_gallery_was_busy_still_ends(tmp_path, facedata, pipeline):
    """Its `new` went out before it could be known as ignored: its `end` follows (presence stays
    right), nothing else."""
    from edge.gallery import Gallery
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    from edge.unknowns.store import KeptFace, UnknownStore
    gallery = Gallery(str(tmp_path / "gallery.db"))
    try:
        face = largest_face(pipeline.process(read_image(lfw(facedata, OTHER, 1))))
        store = UnknownStore(gallery)
        unknown_id, _ = store.save_track(None, "door-0", "door", 1.0, [KeptFace(face.crop, face.embedding, 0.9)],
                                         pipeline.recognizer_fingerprint)
        store.ignore(unknown_id)
        held, publisher = run_holding_the_gallery(tmp_path, facedata, pipeline, gallery, lfw(facedata, OTHER, 0))
        assert store.identity(unknown_id).tracks == 1       # the ignored face's visit was not kept
    finally:
        gallery.close()
    assert [e["type"] for e in held] == ["new"]
    assert [e["type"] for e in publisher.events] == ["new", "end"], publisher.events


def test_disabled_keeps_no_stranger(tmp_path, facedata, pipeline):
    from edge.demo_media import write_video
    from edge.gallery import Gallery
    from edge.imageio import read_image
    from edge.unknowns.store import UnknownStore
    from tests.support.daemon import make_service, service_config
    video = str(tmp_path / "v.avi")
    write_video(video, [(read_image(lfw(facedata, OTHER, 0)), 2.0), (None, 1.5)])
    gallery = Gallery(str(tmp_path / "gallery.db"))
    config = service_config([{"name": "door", "source": video, "type": "file"}], unknowns={"enabled": False})
    service = make_service(config, pipeline, gallery, once=True)
    try:
        service.run()
        events = service.publisher.events
        assert [e["type"] for e in events] == ["new", "end"] and all(e["unknown_id"] is None for e in events)
        assert UnknownStore(gallery).counts() == (0, 0, 0)
    finally:
        gallery.close()


def test_a_track_found_ignored_after_its_first_event_keeps_its_events(tmp_path, facedata, pipeline):
    """Its `new` went out while the gallery was busy; once the face is known as ignored, its
    `update` and `end` still go out (a dashboard saw it arrive and must see it leave)."""
    import threading
    from edge.daemon.events import ZERO_LATENCY, Event
    from edge.daemon.recognizer import FrameRecognizer, FrameResult, settings_from
    from edge.daemon.unknown_faces import UnknownFaces
    from edge.gallery import Gallery
    from edge.imageio import read_image
    from edge.pipeline import largest_face
    from edge.unknowns.index import UnknownIndex, rule_matcher
    from edge.unknowns.store import KeptFace, UnknownStore
    from edge.unknowns.tracks import UnknownTracks
    from tests.support.daemon import service_config
    faces = [largest_face(pipeline.process(read_image(lfw(facedata, OTHER, i)))) for i in range(3)]
    gallery = Gallery(str(tmp_path / "gallery.db"))
    try:
        store = UnknownStore(gallery)
        kept = [KeptFace(f.crop, f.embedding, 0.9) for f in faces[:2]]
        ignored, _ = store.save_track(None, "door-0", "door", 1.0, kept, pipeline.recognizer_fingerprint)
        store.ignore(ignored)
        recognizer = FrameRecognizer(pipeline, settings_from(service_config([]), pipeline.threshold))
        tracks = UnknownTracks(store, UnknownIndex(store, pipeline.recognizer_fingerprint,
                                                   rule_matcher(lambda: pipeline.threshold)),
                               pipeline.recognizer_fingerprint)
        unknowns = UnknownFaces(tracks, recognizer)

        def event(kind, n):
            return Event(kind, "e{}".format(n), "door-1", "door", None, 0.1, (0.0, 0.0, 10.0, 10.0), 0.9, 10.0 + n,
                         False, ZERO_LATENCY)
        frame = ("door", FrameResult([faces[2]] * 3, [None] * 3, ["door-1"] * 3, [None] * 3, [], {}))
        taken, release = threading.Event(), threading.Event()

        def hold():
            with gallery._lock:
                taken.set()
                release.wait(60)
        holder = threading.Thread(target=hold)
        holder.start()
        taken.wait(60)
        try:
            first = unknowns.filter([event("new", 1)], frame)
        finally:
            release.set()
            holder.join()
        later = unknowns.filter([event("update", 2)]) + unknowns.filter([event("end", 3)])
        after = unknowns.filter([event("new", 4)._replace(track_id="door-2")], ("door", frame[1]._replace(
            track_ids=["door-2"] * 3)))
    finally:
        gallery.close()
    assert [e.type for e in first] == ["new"] and first[0].unknown_id is None
    assert [e.type for e in later] == ["update", "end"]
    assert after == []          # a new track of the ignored face: no event at all
