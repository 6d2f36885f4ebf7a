"""hires_source: faces found on a camera's small sub-stream, cut from its main stream.

The RTSP server serves the same (still) scene twice: 1280x960 on /main and 320x240 on /sub.
The face is 23 px on the sub-stream (quality 0.2, below the 0.35 bar) and 78 px on the main
stream: recognised only through the main stream.
"""
import base64
import json

import cv2
import numpy as np
import pytest

from edge.daemon.hires import SnapshotSource, main_stream_spec, map_box, scale_detection
from edge.daemon.config import camera_spec
from edge.types import Detection
from tests.broker import Broker, Subscriber
from tests.faults import Daemon, last_stats, record_figure, wait_until
from tests.media import known
from tests.rtsp import RtspServer
from tests.support.daemon import write_config

ROOT = "fe/testcam"


def test_boxes_and_landmarks_scale_with_the_sub_streams_roi():
    det = Detection((10.0, 20.0, 30.0, 50.0), 0.9, np.float32([[12, 25], [28, 25], [20, 35], [14, 45], [26, 45]]))
    scaled = scale_detection(det, 4.0, 4.0, 100.0, 40.0)     # ROI starting at (100, 40), main 4x
    assert scaled.bbox == (440.0, 240.0, 520.0, 360.0)
    assert scaled.landmarks[0].tolist() == [448.0, 260.0]
    assert map_box(SnapshotSource(None, 2.0, 3.0, 0.0, 0.0), (1, 1, 2, 2)) == (2.0, 3.0, 4.0, 6.0)
    spec = camera_spec("door", "rtsp://cam/sub", type="rtsp", fps=5.0, roi=(100, 40, 300, 200), width=320,
                       height=240, reconnect_max_s=5.0, hires_source="rtsp://cam/main")
    main = main_stream_spec(spec)
    assert (main.name, main.source, main.roi, main.fps, main.width) == ("door/hires", "rtsp://cam/main", None, 0.0, 0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, facedata):
    from edge.demo_media import write_frames
    from edge.imageio import read_image
    photo = read_image(known(facedata, "obama2.jpg"))
    canvas = np.full((960, 1280, 3), 96, np.uint8)
    h = int(960 * 0.35)
    w = int(photo.shape[1] * h / photo.shape[0])
    canvas[300:300 + h, 500:500 + w] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    directory = str(tmp_path_factory.mktemp("scene"))
    write_frames(directory, [canvas] * 10)
    return directory


def test_face_too_small_on_the_sub_stream_is_recognised_through_the_main_stream(tmp_path, scene, gallery,
                                                                               model_dir):
    server = RtspServer(scene, mounts=["main", "sub::320x240"]).start()
    broker = Broker(tmp_path / "mosquitto")
    common = {"type": "rtsp", "latency_ms": 0, "open_timeout_s": 8.0}
    cameras = [dict(common, name="door", source=server.url("sub"), hires_source=server.url("main"),
                    hires_max_age_ms=300),
               dict(common, name="plain", source=server.url("sub"))]
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, gallery.path, broker.port,
                          cameras, extra={"snapshots": {"enabled": True}})
    gallery.close()
    sub = Subscriber(broker.port, [ROOT + "/#"])
    daemon = Daemon(config).start()
    try:
        wait_until(lambda: any(json.loads(p)["identity"] == "obama" for p in sub.payloads(ROOT + "/events")),
                   120, "obama recognised through the main stream")
        final = last_stats(sub, lambda s: s["cameras"]["plain"]["frames"] > 30 and
                           s["cameras"]["door"]["hires"]["used"] > 10)
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
        server.stop()
    events = [json.loads(p) for p in sub.payloads(ROOT + "/events")]
    door = [e for e in events if e["camera"] == "door" and e["type"] in ("new", "update")]
    assert door and door[-1]["identity"] == "obama", [(e["type"], e["identity"], e["similarity"]) for e in door]
    # the same sub-stream alone: the face stays below the quality bar, nobody is named
    assert not [e for e in events if e["camera"] == "plain" and e["identity"]]
    assert door[0]["quality"] > 0.5                 # measured on the main stream's crop (0.2 on the sub-stream)
    bbox = door[0]["bbox"]
    assert bbox[3] - bbox[1] < 40                   # the box stays in sub-stream coordinates
    snapshot = cv2.imdecode(np.frombuffer(base64.b64decode(door[0]["snapshot"]), np.uint8), cv2.IMREAD_COLOR)
    assert snapshot.shape[0] > 80                   # cut from the 1280x960 frame
    hires = final["cameras"]["door"]["hires"]
    assert hires["source"] == "open" and hires["used"] > 0 and "plain" not in [k for k in final["cameras"] if "/" in k]
    record_figure("hires", used=hires["used"], fallback_ratio=hires["fallback_ratio"], cut_ms=hires["cut_ms"])
