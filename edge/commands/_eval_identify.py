"""`faceedge eval identify` (open-set identification, issue 12) and `faceedge eval impostors`
(the impostor quantile table edge.open_set reads)."""
import json
import os
import sys

import numpy as np

from edge.batch_reader import map_images
from edge.commands._options import add_model_options, pipeline_from_args
from edge.errors import FaceEdgeError
from edge.evaluation import identify, impostors
from edge.open_set import DEFAULT_FALSE_MATCH_RATE, TABLE_PATH, derive
from edge.pipeline import central_face
from edge.progress import ProgressBar


def register_identify(sub):
    parser = sub.add_parser(
        "identify", help="open-set identification on a folder-per-person set: rank-1, DIR, strangers accepted",
        description="Enrolls the first photo of each person with >= 2 photos, probes with their other photos "
                    "and with everyone else's (strangers); prints rank-1, DIR and the share of strangers matched "
                    "to someone at the rule in force (recognition.false_match_rate and the gallery size, or "
                    "--threshold) and at FPIR 1%% / 0.1%%, then the rule on random galleries of 10 and 100.")
    parser.add_argument("--root", required=True, help="folder with one sub-folder of photos per person")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--pairs", help="LFW pairs.txt: with --fold, only the people of that fold are used")
    parser.add_argument("--fold", type=int, help="1-based fold of --pairs")
    parser.add_argument("--people", type=int, metavar="N",
                        help="enroll N random people with >= 2 photos instead of all (the others are strangers)")
    parser.add_argument("--seed", type=int, default=12, help="seed of the random galleries (default: %(default)s)")
    _rule_options(parser)
    parser.set_defaults(func=run_identify)
    imp = sub.add_parser(
        "impostors", help="measure a model's impostor cosine quantiles into the table the threshold comes from",
        description="Scores every pair of photos of different people and writes the quantiles of the cosine "
                    "(no photo, no embedding) for this model into the table (default: the shipped one).")
    imp.add_argument("--root", required=True, help="folder with one sub-folder of photos per person")
    imp.add_argument("--pairs", help="LFW pairs.txt: with --fold, only the people of that fold are used")
    imp.add_argument("--fold", type=int, help="1-based fold of --pairs")
    imp.add_argument("--table", default=TABLE_PATH, help="table to update (default: %(default)s)")
    imp.add_argument("--name", help="model name recorded in the table (default: the recognizer file's)")
    imp.add_argument("--embeddings", metavar="NPZ", help="cache of the photos' embeddings (read, then updated)")
    add_model_options(imp)
    imp.set_defaults(func=run_impostors)


def _rule_options(parser):
    parser.add_argument("--false-match-rate", type=float, default=DEFAULT_FALSE_MATCH_RATE,
                        help="target share of strangers matched to anyone (default: %(default)s)")
    parser.add_argument("--threshold", type=float, help="a fixed cosine threshold instead of the target")
    parser.add_argument("--embeddings", metavar="NPZ", help="cache of the photos' embeddings (read, then updated)")
    add_model_options(parser)


def embed_photos(pipeline, paths, cache=None):
    """path -> embedding of the face nearest the centre (None: no face found). cache: an .npz
    for this model and flip setting, read first and rewritten with what was added."""
    embeddings = _read_cache(cache, pipeline) if cache else {}
    todo = [p for p in paths if p not in embeddings]
    bar = ProgressBar(len(todo), "embedding")

    def central(image, path):
        height, width = image.shape[:2]
        return central_face(pipeline.process(image, path), width, height)

    for item, face in map_images(todo, central):
        embeddings[item.path] = face.embedding if face is not None else None
        bar.update()
    bar.close()
    if cache and todo:
        _write_cache(cache, pipeline, embeddings)
    return embeddings


def _cache_key(pipeline):
    return "{}:{}".format(pipeline.recognizer_fingerprint, bool(pipeline.recognizer.flip))


def _read_cache(path, pipeline):
    if not os.path.exists(path):
        return {}
    data = np.load(path)
    if str(data["key"]) != _cache_key(pipeline):
        raise FaceEdgeError("{} holds embeddings of another model or flip setting".format(path))
    return dict((p, v if ok else None) for p, v, ok in zip(data["paths"].tolist(), data["vectors"], data["ok"]))


def _write_cache(path, pipeline, embeddings):
    paths = sorted(embeddings)
    dim = next((len(v) for v in embeddings.values() if v is not None), 0)
    vectors = np.stack([embeddings[p] if embeddings[p] is not None else np.zeros(dim, np.float32) for p in paths])
    np.savez(path, key=_cache_key(pipeline), paths=np.array(paths), vectors=vectors,
             ok=np.array([embeddings[p] is not None for p in paths]))


def _people(args):
    """(people, description of the set) from --root, restricted to a fold by --pairs/--fold."""
    people = identify.folder_set(args.root)
    root = os.path.normpath(os.path.abspath(args.root))
    described = os.path.join(os.path.basename(os.path.dirname(root)), os.path.basename(root))
    if args.pairs and args.fold:
        keep = _fold_people(args.pairs, args.fold)
        people = [(p, photos) for p, photos in people if p in keep]
        described += " fold {} of {}".format(args.fold, os.path.basename(args.pairs))
    return people, described


def run_identify(args):
    people, described = _people(args)
    pipeline = pipeline_from_args(args, min_quality=0.0, threads=1)
    embeddings = embed_photos(pipeline, [p for _, photos in people for p in photos], args.embeddings)
    flip = bool(pipeline.recognizer.flip)

    def rule_for(names, vectors):
        from edge.gallery.report import model_report
        return derive(pipeline.recognizer_fingerprint, len(names), args.false_match_rate, args.threshold, flip,
                      lambda far: model_report(vectors, np.arange(len(names)), names, target_far=far)[0],
                      pipeline.threshold)

    if args.people is not None and args.people < 1:
        raise FaceEdgeError("--people must be at least 1")
    report = identify.evaluate(people, embeddings, rule_for, enroll=args.people, seed=args.seed)
    report.update(profile=args.profile, flip=flip, model=pipeline.recognizer_fingerprint[:12], data=described)
    if args.json:
        print(json.dumps(report))
    else:
        _print_identify(report)
    return 0


def _print_identify(report):
    rule = report["rule"]
    print("{} people enrolled, {} genuine probes, {} stranger probes ({} without a face); rank-1 {:.4f}".format(
        report["enrolled"], report["genuine_probes"], report["stranger_probes"], report["probes_without_face"],
        report["rank1"] or 0.0))
    print("rule in force: threshold {:.4f} from {} (false_match_rate {:g}, per-comparison FAR {})".format(
        rule["threshold"], rule["source"], rule["false_match_rate"], rule["per_comparison_far"]))
    for label, key in (("rule in force", "at_rule"), ("FPIR 1%", "at_fpir_1e-2"), ("FPIR 0.1%", "at_fpir_1e-3")):
        r = report[key]
        if r is not None:
            print("  at {:<13} threshold {:.4f}: DIR {:.4f}, strangers matched {:.2f}% ({})".format(
                label, r["threshold"], r["dir"] or 0.0, 100 * (r["stranger_accept_rate"] or 0.0),
                r["strangers_accepted"]))
    for small in report["smaller_galleries"]:
        print("  {} enrolled ({} random draws, thresholds {:.4f}-{:.4f}): strangers matched {:.2f}% (worst draw "
              "{:.2f}%), DIR {:.4f}".format(small["enrolled"], small["draws"], small["threshold_min"],
                                           small["threshold_max"], 100 * small["stranger_accept_rate"],
                                           100 * small["stranger_accept_rate_worst_draw"], small["dir"] or 0.0))


def _fold_people(pairs_path, fold):
    lines = [line.split() for line in open(pairs_path) if line.strip()]
    per_fold = 2 * int(lines[0][1])
    chosen = lines[1 + (fold - 1) * per_fold:1 + fold * per_fold]
    if fold < 1 or not chosen:
        raise FaceEdgeError("{} has no fold {}".format(pairs_path, fold))
    return set(p[0] for p in chosen) | set(p[2] for p in chosen if len(p) == 4)


def _table_json(table):
    """Indented, one [far, cosine] point per line: small diffs when a model is re-measured."""
    lines = ['{\n "version": %d,\n "models": [' % table.get("version", 1)]
    for i, entry in enumerate(table["models"]):
        head = dict((k, v) for k, v in sorted(entry.items()) if k != "points")
        body = ",\n".join("   " + json.dumps(p) for p in entry["points"])
        lines.append("  " + json.dumps(head)[:-1] + ', "points": [\n' + body + "\n  ]}"
                     + ("," if i + 1 < len(table["models"]) else ""))
    return "\n".join(lines) + "\n ]\n}\n"


def run_impostors(args):
    people, measured_on = _people(args)
    pipeline = pipeline_from_args(args, min_quality=0.0, threads=1)
    photos = [(p, path) for p, paths in people for path in paths]
    embeddings = embed_photos(pipeline, [path for _, path in photos], args.embeddings)
    have = [(p, path) for p, path in photos if embeddings.get(path) is not None]
    scores = impostors.impostor_scores(np.stack([embeddings[path] for _, path in have]), [p for p, _ in have])
    entry = {"fingerprint": pipeline.recognizer_fingerprint, "flip": bool(pipeline.recognizer.flip),
             "name": args.name or os.path.basename(args.recognizer or args.profile),
             "measured_on": "{} ({} people, {} photos with a face)".format(measured_on, len(people), len(have)),
             "impostor_pairs": int(len(scores)), "points": impostors.quantile_points(scores)}
    table = {"version": 1, "models": []}
    if os.path.exists(args.table):
        with open(args.table) as f:
            table = json.load(f)
    table["models"] = [e for e in table["models"]
                       if (e["fingerprint"], e.get("flip")) != (entry["fingerprint"], entry["flip"])] + [entry]
    with open(args.table, "w") as f:
        f.write(_table_json(table))
    print("{}: {} impostor pairs, {} points down to FAR {:g} -> {}".format(
        entry["name"], entry["impostor_pairs"], len(entry["points"]), entry["points"][-1][0] if entry["points"]
        else 1.0, args.table), file=sys.stderr)
    return 0
