"""`faceedge embed IMAGE... --json`: faces and embeddings, one JSON object per line."""
import json
import sys

from edge.batch_reader import map_images
from edge.commands._options import add_model_options, pipeline_from_args


def register(subparsers):
    parser = subparsers.add_parser(
        "embed", help="detect faces and print their embeddings as JSON lines",
        description="One JSON object per image and line: {\"path\", \"faces\": [{\"bbox\", \"score\", "
                    "\"landmarks\", \"embedding\"}], \"error\"}. Unreadable files give a line with "
                    "\"error\" set; the exit code is 1 if any image failed.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--json", action="store_true", help="JSON lines (the only output format)")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _round(values, digits):
    return [round(float(v), digits) for v in values]


def run(args):
    pipeline = pipeline_from_args(args, min_quality=0.0, threads=1)
    failed = 0
    for item, faces in map_images(args.images, pipeline.process):
        record = {"path": item.path, "faces": [], "error": item.error}
        if faces is not None:
            for face in faces:
                d = face.detection
                record["faces"].append({
                    "bbox": _round(d.bbox, 2),
                    "score": round(d.score, 4),
                    "landmarks": [_round(p, 2) for p in d.landmarks],
                    "embedding": _round(face.embedding, 6) if face.embedding is not None else None,
                })
        else:
            failed += 1
        sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 1 if failed else 0
