"""`faceedge eval lfw|detect|identify|impostors`: accuracy on standard benchmarks, through the
whole pipeline."""
import json
import sys

from edge.batch_reader import map_images
from edge.commands._eval_identify import embed_photos, register_identify
from edge.commands._options import add_model_options, pipeline_from_args
from edge.evaluation import detection, lfw
from edge.progress import ProgressBar


def register(subparsers):
    parser = subparsers.add_parser("eval", help="measure accuracy (LFW verification, detection)")
    sub = parser.add_subparsers(dest="eval_command", metavar="BENCHMARK")
    lfw_parser = sub.add_parser(
        "lfw", help="LFW verification: mean accuracy +- std (thresholds from the other folds), ROC AUC, TAR@FAR=1e-3",
        description="Raw LFW photos go through detect -> align -> embed; the face nearest the centre is used. "
                    "Pairs where no face was found count as errors and are reported.")
    lfw_parser.add_argument("--root", required=True, help="folder with <Person_Name>/<Person_Name>_NNNN.jpg")
    lfw_parser.add_argument("--pairs", required=True, help="LFW pairs.txt")
    lfw_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_options(lfw_parser)
    lfw_parser.set_defaults(func=run_lfw)
    det_parser = sub.add_parser("detect", help="detection recall and precision at IoU 0.5 (dlib XML boxes)")
    det_parser.add_argument("--xml", required=True, help="dlib imglab XML with <box top left width height>")
    det_parser.add_argument("--iou", type=float, default=0.5, help="IoU for a hit (default: 0.5)")
    det_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_model_options(det_parser)
    det_parser.set_defaults(func=run_detect)
    register_identify(sub)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_lfw(args):
    pairs = lfw.read_pairs(args.pairs, args.root)
    pipeline = pipeline_from_args(args, min_quality=0.0, threads=1)
    paths = sorted(set(p.left for p in pairs) | set(p.right for p in pairs))
    embeddings = embed_photos(pipeline, paths)
    report = lfw.evaluate(pairs, embeddings)
    if args.json:
        print(json.dumps(dict(report._asdict(), profile=args.profile, flip=pipeline.recognizer.flip, det_size=args.det_size)))
    else:
        print("LFW: {} pairs in {} folds, {} photos".format(report.pairs, report.folds, report.photos))
        print("accuracy {:.2f}% +- {:.2f} (thresholds {})".format(
            100 * report.accuracy_mean, 100 * report.accuracy_std,
            ", ".join("{:.3f}".format(t) for t in report.fold_thresholds)))
        print("ROC AUC {:.4f}; TAR {:.2f}% at FAR 1e-3 (threshold {:.3f})".format(
            report.roc_auc, 100 * report.tar_at_far_1e3, report.threshold_at_far_1e3))
        print("no face found on {} photos ({} pairs counted as errors)".format(
            len(report.photos_without_face), report.pairs_without_face))
        for path in report.photos_without_face:
            print("  no face: " + path)
    return 0


def run_detect(args):
    images = detection.read_dlib_xml(args.xml)
    pipeline = pipeline_from_args(args, min_quality=0.0, threads=1)
    per_image = []
    bar = ProgressBar(len(images), "detecting")
    by_path = dict((img.path, img) for img in images)
    for item, detections in map_images([img.path for img in images], lambda image, path: pipeline.detector.detect(image)):
        if detections is None:
            print("faceedge: error: " + (item.error or item.path), file=sys.stderr)
            return 1
        annotated = by_path[item.path]
        found = [d.bbox for d in detections]
        per_image.append(detection.match_image(annotated.boxes, annotated.ignored, found, args.iou))
        bar.update()
    bar.close()
    report = detection.summarize(per_image, sum(len(i.boxes) for i in images), len(images), args.iou)
    if args.json:
        print(json.dumps(dict(report._asdict(), profile=args.profile, det_size=args.det_size)))
    else:
        print("detection on {} images, {} faces: recall {:.3f}, precision {:.3f} at IoU {}".format(
            report.images, report.faces, report.recall, report.precision, report.iou))
    return 0
