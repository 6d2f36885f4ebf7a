"""Options shared by the CLI commands (underscore: edge/cli.py does not load it as a command)."""
import os

from edge.backends import KINDS


def add_model_options(parser):
    group = parser.add_argument_group("models")
    group.add_argument("--profile", default=os.environ.get("FACEEDGE_PROFILE", "default"),
                       help="model profile: default (RetinaFace + SFace) or arcface-mbf (default: %(default)s)")
    group.add_argument("--model-dir", default=os.environ.get("FACEEDGE_MODEL_DIR"),
                       help="model directory (default: ~/.local/share/faceedge/models)")
    group.add_argument("--backend", choices=KINDS, default="auto", help="inference backend (default: auto)")
    group.add_argument("--detector", help="own detector ONNX as FAMILY:PATH (retinaface or scrfd)")
    group.add_argument("--recognizer", help="own recognizer ONNX as FAMILY:PATH (sface or arcface)")
    group.add_argument("--det-size", type=int, default=640, help="detector input, longest side (default: 640)")
    flip = group.add_mutually_exclusive_group()
    flip.add_argument("--flip", dest="flip", action="store_true", default=None,
                      help="average each embedding with the mirrored face's (twice the embedding cost; "
                           "default: per profile, on for arcface-mbf, off for default)")
    flip.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                      help="do not average with the mirrored face")


def pipeline_from_args(args, min_quality=None, threads=0):
    """threads=1 for commands that keep several images in flight (edge.batch_reader)."""
    from edge.pipeline import DEFAULT_MIN_QUALITY, open_pipeline
    return open_pipeline(args.profile, args.model_dir, args.backend, det_size=args.det_size, threads=threads,
                         min_quality=DEFAULT_MIN_QUALITY if min_quality is None else min_quality,
                         detector=args.detector, recognizer=args.recognizer, flip=args.flip)


def add_gallery_option(parser):
    from edge.gallery import default_gallery_path
    parser.add_argument("--gallery", default=None, metavar="DB",
                        help="gallery database (default: $FACEEDGE_GALLERY or {})".format(default_gallery_path()))


def open_gallery_from_args(args):
    from edge.gallery import Gallery, default_gallery_path
    return Gallery(args.gallery or default_gallery_path())
