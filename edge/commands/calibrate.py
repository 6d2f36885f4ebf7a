"""`faceedge calibrate collect|show`: INT8 calibration sets (plain directories)."""
import argparse
import logging
import os
import sys

from edge.errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers):
    # type: (argparse._SubParsersAction) -> None
    from edge.models import default_model_dir
    parser = subparsers.add_parser("calibrate", help="collect INT8 calibration sets")
    sub = parser.add_subparsers(dest="calibrate_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])
    collect = sub.add_parser("collect", help="gather detector frames and aligned face crops into a directory")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--camera", metavar="SOURCE",
                        help="camera: device index, file, URL or GStreamer pipeline")
    source.add_argument("--folder", metavar="DIR", help="a directory of photos")
    collect.add_argument("--out", required=True, metavar="DIR", help="new directory for the calibration set")
    collect.add_argument("--frames", type=int, default=300, help="camera frames to read (300)")
    collect.add_argument("--interval", type=float, default=0.5, help="seconds between camera frames (0.5)")
    collect.add_argument("--max-crops", type=int, default=1000, help="most face crops to keep (1000)")
    collect.add_argument("--profile", default="default", help="model profile used to find and align faces")
    collect.add_argument("--model-dir", default=None, help="model directory (default: {})".format(default_model_dir()))
    collect.add_argument("--gallery", default=None, metavar="PATH", help="also take crops from this gallery")
    collect.set_defaults(func=_collect)
    show = sub.add_parser("show", help="counts and hash of a calibration set")
    show.add_argument("dir")
    show.set_defaults(func=_show)


def _crop_fn(profile, model_dir):
    """Aligned crops from the run-time pipeline (ONNX Runtime: calibration needs no GPU)."""
    try:
        from edge.pipeline import open_pipeline
    except ImportError:
        log.warning("edge.pipeline is not available: collecting detector frames only")
        return None
    pipeline = open_pipeline(profile, model_dir, "onnxruntime")
    return lambda image: [face.crop for face in pipeline.process(image)]


def _gallery_crops(path):
    if not path:
        return []
    # Assumed gallery API (edge/gallery is being written): open_gallery(path).samples() -> items with .crop
    try:
        from edge.gallery import open_gallery
        gallery = open_gallery(path)
        samples = gallery.samples()
    except (ImportError, AttributeError):
        raise ConfigError("this faceedge cannot read gallery crops yet: drop --gallery")
    return (sample.crop for sample in samples)


def _collect(args):
    # type: (argparse.Namespace) -> int
    from calibration.collect import camera_frames, collect, folder_images
    if args.frames < 1:
        raise ConfigError("--frames must be at least 1")
    if args.camera:
        frames = camera_frames(args.camera, args.frames, args.interval)
        sources = ["camera:{}".format(args.camera)]
    else:
        frames = folder_images(args.folder)
        sources = ["folder:{}".format(os.path.abspath(args.folder))]
    if args.gallery:
        sources.append("gallery:{}".format(os.path.abspath(args.gallery)))
    manifest = collect(args.out, frames, crop_fn=_crop_fn(args.profile, args.model_dir),
                       extra_crops=_gallery_crops(args.gallery), max_frames=args.frames,
                       max_crops=args.max_crops, sources=sources)
    print("{}: {} detector frames ({} near-duplicates skipped), {} face crops, sha256 {}".format(
        args.out, len(manifest["detector"]), manifest["frames_rejected_as_duplicates"],
        len(manifest["recognizer"]), manifest["sha256"][:16]))
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
