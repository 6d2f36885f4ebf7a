"""Payload and image limits of the running daemon (bytes, pixels, images per command, faces per frame)."""
import base64
import json

import numpy as np

from tests.broker import Broker, Subscriber
from tests.faults import Daemon, last_stats, stats_bodies
from tests.media import group_video, known
from tests.support.daemon import write_config

ROOT = "fe/testcam"
LIMITS = {"max_payload_bytes": 300000, "max_image_bytes": 50000, "max_image_pixels": 200000,
          "max_images_per_command": 2, "max_faces_per_frame": 2}


def _b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def _png(width, height):
    import cv2
    return base64.b64encode(cv2.imencode(".png", np.full((height, width, 3), 90, np.uint8))[1].tobytes()).decode()


def test_limits_are_enforced_by_the_running_daemon(tmp_path, facedata, model_dir):
    broker = Broker(tmp_path / "mosquitto")
    # four faces in every frame, two allowed
    video = group_video(str(tmp_path / "g.avi"), [known(facedata, "obama2.jpg"), known(facedata, "biden.jpg"),
                                                   known(facedata, "obama.jpg")], seconds=2.0, fps=10.0)
    config = write_config(str(tmp_path / "faceedge.toml"), tmp_path, model_dir, str(tmp_path / "g.db"),
                          broker.port, [{"name": "hall", "source": video, "type": "file", "loop": True}],
                          extra={"limits": LIMITS})
    small = _b64_file(known(facedata, "obama-240p.jpg"))        # 37 kB, 426x240: within every limit
    commands = {
        # request_id last: still found in the refused payload (head and tail are searched)
        "payload": (b'{"action": "list", "pad": "' + b"x" * 400000 + b'", "request_id": "payload"}',
                    "max_payload_bytes (300000)"),
        "bytes": ({"images": [_b64_file(known(facedata, "obama-480p.jpg"))]}, "max_image_bytes (50000)"),
        "pixels": ({"images": [_png(600, 600)]}, "600x600 pixels, outside the limit of 200000"),
        "count": ({"images": [small] * 3}, "max_images_per_command (2)"),
        "fits": ({"images": [small]}, None),
    }
    sub = Subscriber(broker.port, [ROOT + "/gallery/response", ROOT + "/stats", ROOT + "/available",
                                   ROOT + "/events"])
    daemon = Daemon(config).start()
    try:
        daemon.wait_online(sub)
        for request_id, (body, _) in sorted(commands.items()):
            if isinstance(body, dict):
                body = json.dumps(dict(body, request_id=request_id, action="enroll", name="obama")).encode()
            sub.publish(ROOT + "/gallery/set", body)
        answers = dict((r, sub.wait_json(ROOT + "/gallery/response", lambda b, r=r: b["request_id"] == r))
                       for r in commands)
        seen = len(stats_bodies(sub))
        last_stats(sub, lambda s: s["processed_frames"] >= 30, after_count=seen, limit=120)
        assert daemon.stop() == 0
    finally:
        daemon.cleanup()
        sub.close()
        broker.stop()
    for request_id, (_, words) in commands.items():
        if words is None:
            assert answers[request_id]["ok"], answers[request_id]
        else:
            assert answers[request_id]["ok"] is False and words in answers[request_id]["error"], answers[request_id]
    # faces of one frame share its frame_time: never more than the limit announced at once
    per_frame = {}
    for event in sub.json(ROOT + "/events"):
        if event["type"] == "new":
            per_frame.setdefault(event["frame_time"], set()).add(event["track_id"])
    assert per_frame and max(len(t) for t in per_frame.values()) == LIMITS["max_faces_per_frame"]
