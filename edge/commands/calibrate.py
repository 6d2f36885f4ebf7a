"""`faceedge calibrate collect|show`: INT8 calibration sets (plain directories)."""
import argparse
import os
import sys

from edge.errors import ConfigError


def register(subparsers):
    # type: (argparse._SubParsersAction) -> None
    from edge.models import default_model_dir
    parser = subparsers.add_parser("calibrate", help="collect INT8 calibration sets")
    sub = parser.add_subparsers(dest="calibrate_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])
    collect = sub.add_parser("collect", help="gather detector frames and aligned face crops into a directory")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", metavar="NAME",
                        help="a camera named in --config (opened as the daemon opens it), or a source: "
                             "device index, file, URL or GStreamer pipeline")
    source.add_argument("--folder", metavar="DIR", help="a directory of photos")
    collect.add_argument("--out", required=True, metavar="DIR", help="new directory for the calibration set")
    collect.add_argument("--frames", type=int, default=300, help="camera frames to read (300)")
    collect.add_argument("--interval", type=float, default=0.5, help="seconds between camera frames (0.5)")
    collect.add_argument("--max-crops", type=int, default=1000, help="most face crops to keep (1000)")
    collect.add_argument("--profile", default=None,
                         help="model profile used to find and align faces (default: the --config one, or default)")
    collect.add_argument("--model-dir", default=None, help="model directory (default: {})".format(default_model_dir()))
    collect.add_argument("--config", default=None, metavar="FILE",
                         help="daemon configuration: its cameras by name, its gallery and models")
    collect.add_argument("--gallery", default=None, metavar="PATH",
                         help="also take crops from this gallery (default: the --config gallery, if any)")
    collect.set_defaults(func=_collect)
    show = sub.add_parser("show", help="counts and hash of a calibration set")
    show.add_argument("dir")
    show.set_defaults(func=_show)


def _crop_fn(profile, model_dir, config=None):
    """Aligned crops from the run-time pipeline (ONNX Runtime: calibration needs no GPU)."""
    from edge.pipeline import open_pipeline
    options = {}
    if config is not None:
        options = {"det_size": config.recognition.det_size, "detector": config.models.detector or None,
                   "recognizer": config.models.recognizer or None}
    pipeline = open_pipeline(profile, model_dir, "onnxruntime", **options)
    return lambda image: [face.crop for face in pipeline.process(image)]


def _gallery_crops(path):
    """Aligned crops stored by enrolment (edge.gallery keeps them for re-embedding)."""
    if not path:
        return iter(())
    if not os.path.isfile(path):
        raise ConfigError("gallery {} does not exist: give the daemon's gallery file or drop --gallery".format(path))
    from edge.gallery import open_gallery

    def crops():
        gallery = open_gallery(path)
        try:
            for sample in gallery.samples():
                if sample.crop is not None:
                    yield sample.crop
        finally:
            gallery.close()
    return crops()


def _open_camera(name, config):
    """(capture, spec, kind): a camera of the config by name, else `name` as a source."""
    from edge.daemon.camera import open_capture, resolve_type
    from edge.daemon.config import camera_spec
    cameras = list(config.cameras) if config is not None else []
    for cam in cameras:
        if cam.name == name:
            spec = cam
            break
    else:
        if cameras and not any(c in name for c in "/:!.") and not name.isdigit():
            raise ConfigError("no camera named {!r} in {} (cameras: {})".format(
                name, config.source, ", ".join(c.name for c in cameras)))
        spec = camera_spec("camera", name)
    kind = resolve_type(spec)
    return open_capture(spec, kind), spec, kind


def _collect(args):
    # type: (argparse.Namespace) -> int
    from calibration.collect import camera_frames, collect, folder_images
    if args.frames < 1:
        raise ConfigError("--frames must be at least 1")
    config = None
    if args.config:
        from edge.daemon.config import load_config
        config = load_config(args.config)
    profile = args.profile or (config.models.profile if config is not None else "default")
    model_dir = args.model_dir or (config.models.dir if config is not None else "") or None
    gallery = args.gallery or (config.gallery.path if config is not None else "") or ""
    if args.camera:
        cap, spec, kind = _open_camera(args.camera, config)
        frames = camera_frames(cap, args.frames, args.interval, name=spec.name, roi=spec.roi,
                               is_file=(kind == "file"))
        sources = ["camera:{} ({})".format(spec.name, spec.source)]
    else:
        frames = folder_images(args.folder)
        sources = ["folder:{}".format(os.path.abspath(args.folder))]
    if gallery:
        sources.append("gallery:{}".format(os.path.abspath(gallery)))
    manifest = collect(args.out, frames, crop_fn=_crop_fn(profile, model_dir, config),
                       extra_crops=_gallery_crops(gallery), max_frames=args.frames,
                       max_crops=args.max_crops, sources=sources)
    print("{}: {} detector frames ({} near-duplicates skipped), {} face crops ({} from the gallery), "
          "sha256 {}".format(args.out, len(manifest["detector"]), manifest["frames_rejected_as_duplicates"],
                             len(manifest["recognizer"]),
                             sum(1 for r in manifest["recognizer"] if r["from"] == "gallery"),
                             manifest["sha256"][:16]))
    return 0


def _show(args):
    # type: (argparse.Namespace) -> int
    from calibration import dataset
    cset = dataset.load(args.dir)
    for role in dataset.ROLES:
        calib, held = dataset.split(cset.files[role])
        print("{}: {} for calibration, {} held out for verification (INT8 needs >= {})".format(
            role, len(calib), len(held), dataset.MIN_SAMPLES[role]))
    print("sha256: {}".format(cset.sha256))
    return 0
