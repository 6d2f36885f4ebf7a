"""`faceedge enroll NAME --camera CAM [--config FILE]`: the daemon's enroll_live, from the shell.

The same SampleCollector as the daemon; the frames come from a camera opened here (the
daemon must not hold the same device), a preview window shows the face box and progress
when a display exists (keys: s save this face now, q quit without enrolling).
"""
import json
import sys
import threading
import time

from edge.errors import FaceEdgeError


def add_live_options(parser):
    group = parser.add_argument_group("from a camera (instead of photos)")
    group.add_argument("--camera", metavar="CAM",
                       help="a camera name from --config, or a source: /dev/videoN, an index, rtsp://..., a video file")
    group.add_argument("--config", metavar="FILE", help="daemon configuration: cameras, models, gallery, threshold")
    group.add_argument("--seconds", type=float, default=15.0, help="how long to collect (default: %(default)s)")
    group.add_argument("--samples", type=int, default=10, help="distinct samples to collect (default: %(default)s)")
    group.add_argument("--min-samples", type=int, default=0,
                       help="fewer than this at the end: nothing is enrolled (default: half of --samples)")
    group.add_argument("--no-preview", action="store_true", help="no window even when a display exists")


def _setup(args):
    """(camera spec, pipeline, gallery, (false_match_rate, threshold override), confident margin)."""
    if args.config:
        from edge.commands.daemon import open_pipeline_for
        from edge.daemon.config import load_config
        from edge.gallery import Gallery
        config = load_config(args.config)
        named = dict((c.name, c) for c in config.cameras)
        spec = named[args.camera] if args.camera in named else _source_spec(args.camera)
        pipeline = open_pipeline_for(config)
        gallery = Gallery(args.gallery or config.gallery.path)
        rule = (config.recognition.false_match_rate, config.recognition.threshold or None)
        return spec, pipeline, gallery, rule, config.recognition.confident_margin
    from edge.commands._options import open_gallery_from_args, pipeline_from_args
    from edge.open_set import DEFAULT_FALSE_MATCH_RATE
    pipeline = pipeline_from_args(args)
    return _source_spec(args.camera), pipeline, open_gallery_from_args(args), (DEFAULT_FALSE_MATCH_RATE, None), 0.05


def _source_spec(source):
    from edge.daemon.config import camera_spec
    return camera_spec("camera", source, reconnect_max_s=5.0)     # a person waits in front of it: retry soon


def _checked_min_samples(args):
    from edge.daemon.sample_collector import MAX_SAMPLES, default_min_samples
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise FaceEdgeError("--samples must be between 1 and {}".format(MAX_SAMPLES))
    if args.seconds <= 0:
        raise FaceEdgeError("--seconds must be positive")
    min_samples = args.min_samples or default_min_samples(args.samples)
    if not 1 <= min_samples <= args.samples:
        raise FaceEdgeError("--min-samples must be between 1 and --samples")
    return min_samples


def _show(preview, collector, frame, faces, matches, name, progress):
    """The preview window: boxes, names, progress; [s] keeps this frame's face, [q] gives up."""
    from edge.annotate import FaceLabel, draw
    labels = [FaceLabel(tuple(f.detection.bbox), m.identity if m else None, m.similarity if m else None, None)
              for f, m in zip(faces, matches)]
    header = "enrolling {}: {}/{}  {:.0f} s left  [s] save  [q] quit".format(
        name, progress.samples, progress.target, max(0.0, progress.seconds - progress.elapsed_s))
    key = preview.show(draw(frame.image, labels, header=header))
    if key == "s":
        collector.save_now(faces)
    elif key == "q":
        collector.cancel("stopped with q; nothing enrolled")


def _collect(camera, wake, pipeline, matcher, collector, preview, name):
    """Frames -> faces -> the collector until it has enough, the time is up or the camera ended."""
    reported = (-1, 0.0)
    while not collector.finished():
        frame = camera.take()
        if frame is None:
            if camera.state in ("ended", "stopped"):
                return
            wake.wait(0.05)
            wake.clear()
            continue
        faces = pipeline.process(frame.image, camera.name)
        matches = matcher.match_faces(faces)
        collector.offer(faces, matches)
        progress = collector.progress()
        now = time.monotonic()
        if progress.samples != reported[0] or now - reported[1] >= 1.0:
            reported = (progress.samples, now)
            sys.stderr.write("{}: {}/{} samples, {:.0f} s of {:g}\n".format(
                name, progress.samples, progress.target, progress.elapsed_s, progress.seconds))
        if preview.enabled:
            _show(preview, collector, frame, faces, matches, name, progress)


def run_camera(args):
    from edge.annotate import Preview
    from edge.commands.gallery import reembed_missing
    from edge.daemon.camera import Camera
    from edge.daemon.sample_collector import LiveRequest, SampleCollector, progress_json
    from edge.gallery.store import validate_name
    from edge.open_set import matcher_for

    min_samples = _checked_min_samples(args)
    name = validate_name(args.name)
    spec, pipeline, gallery, (false_match_rate, override), margin = _setup(args)
    try:
        reembed_missing(gallery, pipeline, quiet=True)
        matcher, rule = matcher_for(gallery, pipeline, false_match_rate, override)
        threshold = rule.threshold
        request = LiveRequest(None, name, spec.name, float(args.seconds), args.samples, min_samples)
        wake = threading.Event()
        camera = Camera(spec, wakeup=wake, backoff_start_s=0.5)
        preview = Preview("faceedge enroll " + name, enabled=not args.no_preview)
        collector = None
        camera.start()
        try:
            # The clock starts with the first frame: opening a camera or an RTSP stream takes a while.
            while not camera.opened_once.wait(0.1):
                if camera.state == "reconnecting" and camera.reconnects >= 3:
                    raise FaceEdgeError("cannot open the camera: {}".format(camera.last_error))
            collector = SampleCollector(request, threshold + margin, same_person=threshold)
            _collect(camera, wake, pipeline, matcher, collector, preview, name)
        finally:
            camera.stop()
            preview.close()
        outcome = collector.outcome()
        summary = progress_json(outcome.progress)
        if not outcome.ok:
            if args.json:
                print(json.dumps({"ok": False, "error": outcome.reason, "matches": outcome.other_person,
                                  "summary": summary}, sort_keys=True))
            raise FaceEdgeError(outcome.reason)
        ids = gallery.enroll(name, outcome.samples, pipeline.recognizer_fingerprint)
    finally:
        gallery.close()
    result = {"name": name, "added": len(ids), "sample_ids": ids, "camera": spec.name}
    if args.json:
        print(json.dumps({"ok": True, "result": result, "summary": summary}, sort_keys=True))
    else:
        print("enrolled {} ({} samples from camera {})".format(name, len(ids), spec.name))
    return 0
