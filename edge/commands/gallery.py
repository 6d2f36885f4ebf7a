"""`faceedge gallery list|remove|rename|export|import|reembed`."""
import json
import os

import sys

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
        print("{} people, {} samples".format(summary.people, summary.samples))
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
    print("exported {} samples to {}".format(count, args.file))
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
    print("imported {} samples".format(count))
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


def run_reembed(args):
    pipeline = pipeline_from_args(args)
    with open_gallery_from_args(args) as gallery:
        done = reembed_missing(gallery, pipeline, quiet=True)
        summary = gallery.summary()
    print("re-embedded {} face crop{}; {} samples, model {}".format(done, "" if done == 1 else "s",
                                                                    summary.samples, pipeline.recognizer_fingerprint))
    return 0
