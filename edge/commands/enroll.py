"""`faceedge enroll NAME IMAGE...`, `faceedge enroll --folder DIR` and `faceedge enroll NAME --camera CAM`."""
import json
import sys

from edge.batch_reader import map_images
from edge.commands._live_enroll import add_live_options, run_camera
from edge.commands._options import add_gallery_option, add_model_options, open_gallery_from_args, pipeline_from_args
from edge.errors import FaceEdgeError, GalleryError, NoFaceError
from edge.gallery.enrollment import folder_layout, iter_sorted_by_name, sample_from_image
from edge.progress import ProgressBar


def register(subparsers):
    parser = subparsers.add_parser(
        "enroll", help="add a person (or a folder of people) to the gallery from photos",
        description="Each photo contributes its largest face; photos with no face or a face below the "
                    "quality bar are rejected with the reason. --folder takes DIR/<Name>/*.jpg and "
                    "DIR/<Name>_<n>.jpg. All of one person's accepted photos are committed together. "
                    "--camera: collect distinct crops from a live camera while exactly one face is in view "
                    "(docs/LIVE_ENROLL_AND_REPORT.md).")
    parser.add_argument("name", nargs="?", help="the person's name")
    parser.add_argument("images", nargs="*", metavar="IMAGE")
    parser.add_argument("--folder", metavar="DIR", help="bulk enrollment from a folder")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_gallery_option(parser)
    add_model_options(parser)
    add_live_options(parser)
    parser.set_defaults(func=run)


def _samples(pipeline, paths, errors):
    samples = []

    def make(image, path):
        try:
            return sample_from_image(pipeline, image, path)
        except NoFaceError as exc:
            return exc

    for item, result in map_images(paths, make):
        if item.error:
            errors.append(item.error)
        elif isinstance(result, FaceEdgeError):
            errors.append(str(result))
        else:
            samples.append(result)
    return samples


def run(args):
    if args.camera:
        if args.folder or args.images or not args.name:
            raise FaceEdgeError("--camera takes only NAME (no IMAGE, no --folder)")
        return run_camera(args)
    if args.config:
        raise FaceEdgeError("--config goes with --camera")
    if args.folder and (args.name or args.images):
        raise FaceEdgeError("give either NAME IMAGE... or --folder DIR, not both")
    if not args.folder and (not args.name or not args.images):
        raise FaceEdgeError("give NAME and at least one IMAGE, or --folder DIR")
    if args.folder:
        people = list(iter_sorted_by_name(folder_layout(args.folder)))
        if not people:
            raise FaceEdgeError("no images found in {} (expected DIR/<Name>/*.jpg or DIR/<Name>_<n>.jpg)"
                                .format(args.folder))
    else:
        people = [(args.name, args.images)]
    pipeline = pipeline_from_args(args, threads=1)
    gallery = open_gallery_from_args(args)
    report = {"enrolled": {}, "errors": []}
    bar = ProgressBar(sum(len(p) for _, p in people), "enrolling", enabled=None if args.folder else False)
    for name, paths in people:
        errors = []
        samples = _samples(pipeline, paths, errors)
        bar.update(len(paths))
        report["errors"].extend(errors)
        if samples:
            try:
                gallery.enroll(name, samples, pipeline.recognizer_fingerprint)
            except GalleryError as exc:
                report["errors"].append("{}: {}".format(name, exc))
                continue
            report["enrolled"][name] = len(samples)
    bar.close()
    gallery.close()
    if args.json:
        print(json.dumps(report))
    else:
        for name, count in sorted(report["enrolled"].items()):
            print("enrolled {} ({} photo{})".format(name, count, "" if count == 1 else "s"))
        if report["enrolled"]:
            for error in report["errors"]:
                print("skipped: " + error, file=sys.stderr)
    if not report["enrolled"]:
        if len(report["errors"]) == 1:
            raise FaceEdgeError(report["errors"][0])
        raise FaceEdgeError("nothing enrolled: {} photo(s) rejected".format(len(report["errors"])))
    return 0
