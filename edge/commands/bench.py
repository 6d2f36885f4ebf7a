"""`faceedge bench [--json]`: per-stage latency and throughput of the active backend."""
import json
import os
import platform
import sys
import time
from typing import Callable, Dict, List

import numpy as np

import edge
from edge.align import align_face
from edge.commands._options import add_model_options, pipeline_from_args


def register(subparsers):
    parser = subparsers.add_parser(
        "bench", help="measure per-stage latency (median, p95) and throughput",
        description="Detection (640x480 frame and 250x250 photo), alignment, embedding (batch 1 and "
                    "batched), whole pipeline, and gallery search over 1k and 100k embeddings.")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--image", help="a photo with faces (default: a sample from the model wheels or facedata)")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per stage (default: 30)")
    parser.add_argument("--batch", type=int, default=8, help="batch size for batched embedding (default: 8)")
    parser.add_argument("--live", type=float, metavar="SECONDS",
                        help="instead: run the daemon for SECONDS on a 640x480 video with 1-3 faces through a "
                             "local mosquitto; report its fps and per-stage latency and the latency a subscriber sees")
    parser.add_argument("--rtsp", action="store_true",
                        help="with --live: serve the video from the local GStreamer RTSP server (needs python3-gi, "
                             "gir1.2-gst-rtsp-server-1.0) and report how old frames are when decoded")
    parser.add_argument("--rtsp-backend", choices=("auto", "gstreamer", "ffmpeg"), default="auto",
                        help="with --rtsp: the daemon camera's back-end (default: auto)")
    parser.add_argument("--latency-ms", type=int, default=200,
                        help="with --rtsp: the camera's RTSP jitter buffer, latency_ms (default: 200)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _time(fn, repeat, warmup=3):
    # type: (Callable[[], object], int, int) -> Dict[str, float]
    for _ in range(warmup):
        fn()
    samples = []  # type: List[float]
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    arr = np.array(samples)
    return {"median_ms": round(float(np.median(arr)), 3), "p95_ms": round(float(np.percentile(arr, 95)), 3),
            "runs": repeat}


def _cpu_model():
    # type: () -> str
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except (IOError, OSError):
        pass
    return platform.processor() or platform.machine()


def _sample_image(args):
    from edge.imageio import read_image
    if args.image:
        return read_image(args.image), args.image
    data = os.environ.get("FACEEDGE_DATA") or os.path.join(os.path.dirname(edge.__file__), "..", "..", "shared", "facedata")
    candidate = os.path.normpath(os.path.join(data, "scenes", "two_people.jpg"))
    if os.path.exists(candidate):
        return read_image(candidate), candidate
    from edge.samples import sample_photo
    path = sample_photo("yaoming.jpg")
    return read_image(path), path


def _versions():
    versions = {"faceedge": edge.__version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("onnxruntime", "cv2", "tensorrt"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            pass
    return versions


def machine_and_versions():
    return {"machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
                        "system": platform.platform()},
            "versions": _versions()}


def run(args):
    if args.live:
        from edge.commands._bench_live import run_live
        return run_live(args)
    import cv2
    pipeline = pipeline_from_args(args, min_quality=0.0)
    image, source = _sample_image(args)
    frame = cv2.resize(image, (640, 480))
    photo = cv2.resize(image, (250, 250))
    faces = pipeline.process(frame)
    if not faces:
        print("faceedge: error: no face found in {}; pass --image with a photo of a face".format(source),
              file=sys.stderr)
        return 1
    landmarks = faces[0].detection.landmarks
    crop = faces[0].crop
    dim = pipeline.embed_crops([crop]).shape[1]
    repeat = max(3, args.repeat)
    stages = {
        "detect_640x480": _time(lambda: pipeline.detector.detect(frame), repeat),
        "detect_250x250": _time(lambda: pipeline.detector.detect(photo), repeat),
        "align": _time(lambda: align_face(frame, landmarks), repeat),
        "embed_batch1": _time(lambda: pipeline.embed_crops([crop]), repeat),
        "embed_batch{}".format(args.batch): _time(lambda: pipeline.embed_crops([crop] * args.batch), max(3, repeat // 3)),
        "pipeline_640x480": _time(lambda: pipeline.process(frame), repeat),
    }
    batched = stages["embed_batch{}".format(args.batch)]
    throughput = {
        "embed_faces_per_s_batch1": round(1000.0 / stages["embed_batch1"]["median_ms"], 1),
        "embed_faces_per_s_batched": round(1000.0 * args.batch / batched["median_ms"], 1),
        "pipeline_frames_per_s": round(1000.0 / stages["pipeline_640x480"]["median_ms"], 1),
    }
    rng = np.random.RandomState(0)
    for size in (1000, 100000):
        matrix = rng.normal(size=(size, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        query = matrix[:1] + 0.01
        index = _index(matrix)
        stages["search_{}k".format(size // 1000)] = _time(lambda: index.search(query, 5), repeat)
    stages["outbox_append"] = _outbox_append(repeat)
    report = {
        "backend": pipeline.backend_name, "precision": pipeline.precision, "profile": args.profile,
        "detector": pipeline.detector.family, "recognizer": pipeline.recognizer.family,
        "flip": pipeline.recognizer.flip, "det_size": args.det_size, "embedding_dim": dim,
        "faces_in_frame": len(faces), "image": source, "stages": stages, "throughput": throughput,
    }
    report.update(machine_and_versions())
    if args.json:
        print(json.dumps(report))
    else:
        print("{} on {} ({} cores), {} / {} {} {}".format(report["backend"], report["machine"]["cpu"],
                                                         report["machine"]["cores"], report["detector"],
                                                         report["recognizer"], report["precision"],
                                                         "flip" if report["flip"] else ""))
        for name, figures in stages.items():
            print("  {:<20} median {:8.2f} ms   p95 {:8.2f} ms".format(name, figures["median_ms"], figures["p95_ms"]))
        for name, value in throughput.items():
            print("  {:<28} {}".format(name, value))
    return 0


def _outbox_append(repeat):
    # type: (int) -> Dict[str, float]
    """The one SQLite write the frame loop makes: queueing an event (~450 bytes) in the outbox,
    in a temporary directory on the same disk as the user's data ($TMPDIR otherwise)."""
    import shutil
    import tempfile
    from edge.daemon.events import Event, Latency, new_event_id
    from edge.daemon.outbox import Outbox
    event = Event("new", new_event_id(), "door-1", "door", "someone", 0.62, (100.0, 80.0, 220.0, 230.0), 0.8,
                  time.time(), True, Latency(*([1.0] * 7))).to_json().encode("utf-8")
    directory = tempfile.mkdtemp(prefix="faceedge-bench-outbox-")
    try:
        outbox = Outbox(directory, 10000)
        try:
            return _time(lambda: outbox.append("fe/bench/events", event), repeat)
        finally:
            outbox.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _index(matrix):
    from edge.matching import ExactIndex
    return ExactIndex(matrix)
