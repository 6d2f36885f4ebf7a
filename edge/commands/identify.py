"""`faceedge identify IMAGE... --json`: who is in each photo."""
import json
import os
import sys

from edge.batch_reader import map_images
from edge.commands._options import add_gallery_option, add_model_options, open_gallery_from_args, pipeline_from_args
from edge.commands.gallery import reembed_missing
from edge.errors import FaceEdgeError
from edge.open_set import DEFAULT_FALSE_MATCH_RATE, describe, matcher_for


def register(subparsers):
    parser = subparsers.add_parser(
        "identify", help="recognise the faces in photos against the gallery",
        description="One JSON object per image and line: {\"path\", \"faces\": [{\"bbox\", \"score\", "
                    "\"identity\" (name or null), \"similarity\", \"quality\": {\"score\", \"size\", \"blur\", "
                    "\"yaw\", \"pitch\", \"roll\", \"usable\"}, \"unknown_id\"}], \"error\"}. Faces below the "
                    "quality bar get identity null and similarity 0; a stranger the daemon kept gets its "
                    "unknown_id (u-<n>), else null.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--json", action="store_true", help="JSON lines (default: a readable line per face)")
    parser.add_argument("--threshold", type=float,
                        help="fixed cosine threshold (default: derived from --false-match-rate and the gallery size)")
    parser.add_argument("--false-match-rate", type=float, default=DEFAULT_FALSE_MATCH_RATE,
                        help="share of strangers' faces allowed to match anyone (default: %(default)s)")
    parser.add_argument("--annotate", metavar="OUT",
                        help="write the image with boxes, names (or unknown) and similarity to OUT; with several "
                             "images OUT is a directory (created) and each keeps its file name")
    add_gallery_option(parser)
    add_model_options(parser)
    parser.set_defaults(func=run)


def _quality(q):
    return {"score": round(q.score, 3), "size": round(q.size, 1), "blur": round(q.blur, 1),
            "yaw": round(q.yaw, 1), "pitch": round(q.pitch, 1), "roll": round(q.roll, 1), "usable": q.usable}


def _who(face):
    # a face below the quality bar was not compared with anyone: not the same as a stranger
    if not face["quality"]["usable"]:
        return "not recognised (quality {:.2f}, below the bar)".format(face["quality"]["score"])
    return "{} ({:.2f})".format(face["identity"] or face["unknown_id"] or "unknown", face["similarity"])


def _unknowns(gallery, pipeline, threshold):
    """The strangers the daemon kept (edge/unknowns), matched at the same threshold; None without any."""
    from edge.unknowns.index import UnknownIndex, default_matcher
    from edge.unknowns.store import UnknownStore, has_unknowns
    if not has_unknowns(gallery):
        return None
    return UnknownIndex(UnknownStore(gallery), pipeline.recognizer_fingerprint, default_matcher(threshold))


def _unknown_id(index, face, match):
    if index is None or face.embedding is None or (match is not None and match.identity is not None):
        return None
    return index.match_one(face.embedding).unknown_id


def _annotated_path(args, path):
    if len(args.images) == 1:
        return args.annotate
    if not os.path.isdir(args.annotate):
        os.makedirs(args.annotate)
    return os.path.join(args.annotate, os.path.basename(path))


def _write_annotated(out, image, faces, matches):
    import cv2
    from edge.annotate import FaceLabel, draw
    labels = []
    for face, match in zip(faces, matches):
        labels.append(FaceLabel(tuple(face.detection.bbox), match.identity if match else None,
                                match.similarity if match else None, None))
    if not cv2.imwrite(out, draw(image, labels)):
        raise FaceEdgeError("cannot write the annotated image {} (use .jpg or .png)".format(out))


def run(args):
    pipeline = pipeline_from_args(args, threads=1)
    gallery = open_gallery_from_args(args)
    reembed_missing(gallery, pipeline)   # after a model change, the kept crops are embedded once
    matcher, rule = matcher_for(gallery, pipeline, args.false_match_rate, args.threshold)
    print(describe(rule), file=sys.stderr)
    if not len(matcher.index or ()) and gallery.summary().samples:
        print("warning: the gallery has samples but none for the active model {}; imported embeddings "
              "match only under the --fingerprint they were imported with".format(pipeline.recognizer_fingerprint[:12]),
              file=sys.stderr)
    unknowns = _unknowns(gallery, pipeline, rule.threshold)
    if unknowns is None:
        gallery.close()
    failed = 0
    for item, faces in map_images(args.images, pipeline.process):
        record = {"path": item.path, "faces": [], "error": item.error}
        if faces is None:
            failed += 1
        else:
            matches = matcher.match_faces(faces)
            for face, match in zip(faces, matches):
                record["faces"].append({
                    "bbox": [round(float(v), 2) for v in face.detection.bbox],
                    "score": round(face.detection.score, 4),
                    "identity": match.identity if match else None,
                    "similarity": round(match.similarity, 4) if match else 0.0,
                    "quality": _quality(face.quality),
                    "unknown_id": _unknown_id(unknowns, face, match),
                })
            if args.annotate:
                _write_annotated(_annotated_path(args, item.path), item.image, faces, matches)
        if args.json:
            sys.stdout.write(json.dumps(record) + "\n")
        elif record["error"]:
            # the error names the file already; one line on stderr, as every command says errors
            print("faceedge: error: {}".format(record["error"]), file=sys.stderr)
        elif not record["faces"]:
            print("{}: no face".format(item.path))
        else:
            for face in record["faces"]:
                print("{}: {} at {}".format(item.path, _who(face), [int(v) for v in face["bbox"]]))
    if unknowns is not None:
        gallery.close()
    return 1 if failed else 0
