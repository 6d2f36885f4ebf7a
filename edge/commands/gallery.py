"""`faceedge gallery list|remove|rename|export|import|reembed|report` (and unknowns|name|ignore|forget,
edge/commands/_unknowns.py)."""
import json
import os
import sys
from typing import Optional

from edge.commands import _unknowns as unknowns
from edge.commands._options import add_gallery_option, add_model_options, open_gallery_from_args, pipeline_from_args
from edge.errors import FaceEdgeError
from edge.gallery import archive, importers
from edge.progress import ProgressBar


def register(subparsers):
    parser = subparsers.add_parser("gallery", help="list, remove, rename, export, import and re-embed people")
    sub = parser.add_subparsers(dest="gallery_command", metavar="ACTION")
    p = sub.add_parser("list", help="people with their sample counts")
    p.add_argument("--json", action="store_true",
                   help='JSON: {"people": [{"name", "samples", "negatives", "created"}], "version", "fingerprints"}')
    p.set_defaults(func=run_list)
    p = sub.add_parser("remove", help="delete a person with all their face crops and embeddings")
    p.add_argument("name")
    p.set_defaults(func=run_remove)
    p = sub.add_parser("rename", help="rename a person")
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(func=run_rename)
    p = sub.add_parser("export", help="write the gallery to a portable archive (tar.gz)")
    p.add_argument("file")
    p.set_defaults(func=run_export)
    p = sub.add_parser("import", help="import an archive, or the seed projects' embedding files",
                       description="Formats: archive (from `gallery export`), csv (name, v1, v2, ...), "
                                   "npy (face_encoding.npy + face_name.npy: give both files), json "
                                   "({image_id: embedding}). Seed embeddings carry no face crop: they are "
                                   "stored under --fingerprint and match only with that model.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("auto", "archive", "csv", "npy", "json"), default="auto")
    p.add_argument("--fingerprint", help="model fingerprint of imported embeddings (default: import:<file>)")
    p.set_defaults(func=run_import)
    p = sub.add_parser("reembed", help="embed the kept face crops with the current model (after a model change)",
                       description="Embeds every stored face crop that has no embedding for the chosen model; "
                                   "each batch is committed, so an interrupted run resumes where it stopped. "
                                   "`identify` does this by itself when needed.")
    add_model_options(p)
    p.set_defaults(func=run_reembed)
    p = sub.add_parser("report", help="threshold report: leave-one-out over the gallery's samples, per model",
                       description="Genuine and impostor similarity distributions, the closest pair of different "
                                   "people, the highest score a stranger reaches and the threshold for a target "
                                   "false-accept rate, per model fingerprint (docs/LIVE_ENROLL_AND_REPORT.md).")
    p.add_argument("--json", action="store_true", help="the report as one JSON document")
    p.add_argument("--target-far", type=float, default=1e-3,
                   help="false-accept rate (share of pairs of different people) to aim at (default: %(default)g)")
    p.add_argument("--threshold", type=float,
                   help="show what this threshold does (default: the rule in force for this gallery)")
    p.add_argument("--false-match-rate", type=float, default=0.01,
                   help="the rule's target share of strangers matched to anyone (default: %(default)s)")
    p.add_argument("--fingerprint", action="append", help="only this model fingerprint (repeatable)")
    p.add_argument("--plot", metavar="PNG", help="plot the distributions (needs matplotlib: pip install 'faceedge[plot]')")
    p.set_defaults(func=run_report)
    unknowns.register(sub)
    for p in sub.choices.values():
        add_gallery_option(p)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_list(args):
    with open_gallery_from_args(args) as gallery:
        people = gallery.list_people()
        summary = gallery.summary()
    if args.json:
        print(json.dumps({"people": [{"name": p.name, "samples": p.samples, "negatives": p.negatives,
                                      "created": p.created} for p in people],
                          "version": summary.version, "fingerprints": summary.fingerprints}))
    else:
        for p in people:
            print("{}\t{} sample{}{}".format(p.name, p.samples, "" if p.samples == 1 else "s",
                                            ", {} negative".format(p.negatives) if p.negatives else ""))
        print("{}, {}".format(plural(summary.people, "person", "people"), plural(summary.samples, "sample")))
    return 0


def run_remove(args):
    with open_gallery_from_args(args) as gallery:
        removed = gallery.remove(args.name)
    print("removed {} and {} sample{}".format(args.name, removed, "" if removed == 1 else "s"))
    return 0


def run_rename(args):
    with open_gallery_from_args(args) as gallery:
        gallery.rename(args.old, args.new)
    print("renamed {} to {}".format(args.old, args.new))
    return 0


def run_export(args):
    with open_gallery_from_args(args) as gallery:
        count = archive.export_archive(gallery, args.file)
    print("exported {} to {}".format(plural(count, "sample"), args.file))
    return 0


def _format_of(files, declared):
    if declared != "auto":
        return declared
    first = files[0].lower()
    if first.endswith((".tar.gz", ".tgz", ".tar")):
        return "archive"
    for ext, fmt in ((".csv", "csv"), (".npy", "npy"), (".json", "json")):
        if first.endswith(ext):
            return fmt
    raise FaceEdgeError("cannot tell the format of {}: pass --format".format(files[0]))


def run_import(args):
    fmt = _format_of(args.files, args.format)
    for path in args.files:
        if not os.path.isfile(path):
            raise FaceEdgeError("{}: no such file".format(path))
    with open_gallery_from_args(args) as gallery:
        if fmt == "archive":
            count = sum(archive.import_archive(gallery, path) for path in args.files)
        else:
            if fmt == "npy":
                if len(args.files) != 2:
                    raise FaceEdgeError("npy import needs two files: face_encoding.npy face_name.npy")
                encodings, names = sorted(args.files, key=lambda f: "name" in os.path.basename(f))
                pairs = importers.read_npy_pair(encodings, names)
            elif fmt == "csv":
                pairs = importers.read_csv(args.files[0])
            else:
                pairs = importers.read_json(args.files[0])
            fingerprint = args.fingerprint or importers.default_fingerprint(args.files[0])
            count = importers.import_embeddings(gallery, pairs, fingerprint, os.path.basename(args.files[0]))
    print("imported {}".format(plural(count, "sample")))
    return 0


def reembed_missing(gallery, pipeline, quiet=False):
    """Embed the kept crops that lack an embedding for this pipeline's model; returns how many."""
    missing = len(gallery.missing_embeddings(pipeline.recognizer_fingerprint))
    if not missing:
        return 0
    if not quiet:
        print("re-embedding {} face crop{} for model {}".format(missing, "" if missing == 1 else "s",
                                                                pipeline.recognizer_fingerprint[:12]), file=sys.stderr)
    bar = ProgressBar(missing, "re-embedding", enabled=None if not quiet else False)
    done = gallery.reembed(pipeline.recognizer_fingerprint, pipeline.embed_crops, progress=bar.update)
    bar.close()
    return done


def run_report(args):
    from edge.daemon.report_publisher import check_target_far
    from edge.gallery.report import build_report, plot_report
    target = check_target_far(args.target_far)
    with open_gallery_from_args(args) as gallery:
        if args.fingerprint:
            known = set(gallery.summary().fingerprints)
            for fingerprint in args.fingerprint:
                if fingerprint not in known:
                    raise FaceEdgeError("no embeddings for model {} in the gallery (models: {})".format(
                        fingerprint, ", ".join(sorted(known)) or "none"))
        report = build_report(gallery, target, args.threshold, args.fingerprint, args.false_match_rate)
    if args.plot:
        if plot_report(report, args.plot):
            print("plot written to {}".format(args.plot), file=sys.stderr)
        else:
            print("warning: matplotlib is not installed (pip install 'faceedge[plot]'): no plot written",
                  file=sys.stderr)
    if args.json:
        print(json.dumps(report.data, sort_keys=True))
        return 0
    if not report.data["models"]:
        print("the gallery has no embeddings yet")
    for model in report.data["models"]:
        print("model {}: {}, {} ({} with several)".format(
            model["fingerprint"], plural(model["people"], "person", "people"), plural(model["samples"], "sample"),
            plural(model["people_with_several_samples"], "person", "people")))
        for kind in ("genuine", "impostor"):
            d = model[kind]
            print("  {:9s} {}".format(kind, "no pairs" if d is None else
                                      "{} pairs, median {:.3f}, p05 {:.3f}, p95 {:.3f}, min {:.3f}, max {:.3f}".format(
                                          d["pairs"], d["median"], d["p05"], d["p95"], d["min"], d["max"])))
        if model["closest_pair"]:
            print("  closest different people: {} and {} ({:.3f})".format(
                model["closest_pair"]["names"][0], model["closest_pair"]["names"][1], model["closest_pair"]["similarity"]))
        if model["suggested_threshold"] is not None:
            rates = model["at_suggested"]
            print("  suggested threshold for FAR {:g}: {:.3f} (gallery pairs: FAR {}, FRR {})".format(
                report.data["target_far"], model["suggested_threshold"], rates["false_accept_rate"],
                rates["false_reject_rate"]))
        if model["note"]:
            print("  note: " + model["note"])
        _print_in_force(model)
    return 0


def _print_in_force(model):
    rates, rule = model["at_threshold"], model["rule"]
    if not rates:
        return
    print("  threshold in force {:.4f} ({}): FAR {}, FRR {}".format(
        rates["threshold"], rule["source"] if rule["source"] != "table" else "false_match_rate {:g} at {} people"
        .format(rule["false_match_rate"], rule["people"]), rates["false_accept_rate"], rates["false_reject_rate"]))
    print("  people close enough to be confused at it: {}".format(model["confusable_pairs"] or "none"))
    for pair in model["confusable"]:
        print("    {} and {} ({:.3f})".format(pair["names"][0], pair["names"][1], pair["similarity"]))


def run_reembed(args):
    pipeline = pipeline_from_args(args)
    with open_gallery_from_args(args) as gallery:
        done = reembed_missing(gallery, pipeline, quiet=True)
        summary = gallery.summary()
    print("re-embedded {} face crop{}; {} samples, model {}".format(done, "" if done == 1 else "s",
                                                                    summary.samples, pipeline.recognizer_fingerprint))
    return 0


def plural(count, one, many=None):
    # type: (int, str, Optional[str]) -> str
    return "{} {}".format(count, one if count == 1 else (many or one + "s"))
