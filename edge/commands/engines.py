"""`faceedge build-engines` and `faceedge engines list|inspect|clean`: TensorRT engines for this device."""
import argparse
import json
import os
import sys

from edge.errors import ConfigError


def _size(text):
    # type: (str) -> tuple
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts if p]
    except ValueError:
        raise argparse.ArgumentTypeError("size must be N or HxW, e.g. 640 or 480x640")
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 32:
        raise argparse.ArgumentTypeError("size must be N or HxW with sides >= 32")
    return tuple(values)


def _engine_dir_arg(parser):
    # type: (argparse.ArgumentParser) -> None
    from engine_builder.cache import default_engine_dir
    parser.add_argument("--engine-dir", default=None, help="engine directory (default: {})".format(
        default_engine_dir()))


def register(subparsers):
    # type: (argparse._SubParsersAction) -> None
    from edge.models import default_model_dir
    build = subparsers.add_parser("build-engines", help="build TensorRT engines for this Jetson (FP16/INT8)")
    build.add_argument("--config", default=None, metavar="FILE",
                       help="the daemon's configuration: build exactly the engines it will look up (its models, "
                            "[engines] and detector size); the options below override it")
    build.add_argument("--profile", default=None, help="model profile (default: default)")
    build.add_argument("--model-dir", default=None, help="model directory (default: {})".format(default_model_dir()))
    _engine_dir_arg(build)
    build.add_argument("--precision", default=None, choices=("auto", "fp16", "int8", "fp32"),
                       help="auto (default) = INT8 where the GPU has fast INT8 and calibration data exists, else FP16")
    build.add_argument("--calibration", default=None, metavar="DIR",
                       help="calibration set (from `faceedge calibrate collect`) for INT8 and verification")
    build.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    build.add_argument("--opt-batch", type=int, default=None, help="recognizer batch TensorRT optimises for (8)")
    build.add_argument("--max-batch", type=int, default=None, help="largest recognizer batch (32)")
    build.add_argument("--detector-size", type=_size, default=None, metavar="HxW",
                       help="largest detector input for models with a dynamic input (640); the engine "
                            "accepts 32x32 up to it, like the run-time letterbox")
    build.add_argument("--detector-fixed", action="store_true",
                       help="build the detector for exactly --detector-size (faster; run the detector "
                            "with a fixed, square input then)")
    build.add_argument("--workspace-mb", type=int, default=512, help="TensorRT workspace limit, MiB (512)")
    build.add_argument("--dla-core", type=int, default=-1, help="build for this DLA core (Xavier/Orin); -1 = GPU")
    build.add_argument("--min-cosine-fp16", type=float, default=None, help="verification bound (0.99)")
    build.add_argument("--min-cosine-int8", type=float, default=None, help="verification bound (0.98)")
    build.add_argument("--no-progress", action="store_true", help="no progress display")
    build.add_argument("--check", action="store_true",
                       help="only check the models against TensorRT 8.2's parser constraints (no TensorRT needed)")
    build.set_defaults(func=_build)

    engines = subparsers.add_parser("engines", help="list, inspect and clean stored TensorRT engines")
    sub = engines.add_subparsers(dest="engines_command", metavar="ACTION")
    engines.set_defaults(func=lambda args: (engines.print_help(sys.stderr), 2)[1])
    listing = sub.add_parser("list", help="stored engines with precision, status, TensorRT version, GPU")
    _engine_dir_arg(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=_list)
    inspect = sub.add_parser("inspect", help="an engine's metadata (fingerprint, build, verification)")
    _engine_dir_arg(inspect)
    inspect.add_argument("engine", help="engine or metadata file, or the key/prefix of its name")
    inspect.set_defaults(func=_inspect)
    clean = sub.add_parser("clean", help="remove refused, incompatible and half-written engines")
    _engine_dir_arg(clean)
    clean.add_argument("--all", action="store_true", help="remove every engine, timing and calibration cache")
    clean.add_argument("--dry-run", action="store_true", help="only show what would be removed")
    clean.set_defaults(func=_clean)


def _resolve_models(args, config):
    from edge.models.manifest import resolve_models
    cm = config.models if config is not None else None
    profile = args.profile or (cm.profile if cm else "default")
    model_dir = args.model_dir or (cm.dir if cm else "") or None
    if cm is None or args.profile:
        return resolve_models(profile, model_dir)
    # the daemon's own models, resolved as edge.pipeline.open_pipeline does
    return resolve_models(profile, model_dir, detector=cm.detector, recognizer=cm.recognizer)


def _build(args):
    # type: (argparse.Namespace) -> int
    from engine_builder import verify
    from edge.engines import EngineManager, EngineRequest, engine_options
    config = None
    if args.config:
        from edge.daemon.config import load_config
        config = load_config(args.config)
    eng = config.engines if config is not None else None
    bounds = verify.DEFAULT_BOUNDS
    if args.min_cosine_fp16 is not None:
        bounds = bounds._replace(fp16_cosine=args.min_cosine_fp16)
    if args.min_cosine_int8 is not None:
        bounds = bounds._replace(int8_cosine=args.min_cosine_int8)
    if args.check:
        from edge.commands.models import check_files
        models = _resolve_models(args, config)
        return check_files([models.detector_path, models.recognizer_path])
    det_size = args.detector_size or ((config.recognition.det_size,) * 2 if config is not None else (640, 640))
    options = engine_options(args.engine_dir or (eng.dir if eng else None),
                             args.precision or (eng.precision if eng else "auto"),
                             args.calibration or (eng.calibration_dir if eng else "") or "", True, args.force,
                             args.opt_batch, args.max_batch or (eng.max_batch if eng else 32), det_size,
                             args.workspace_mb, args.dla_core, bounds=bounds, progress=not args.no_progress,
                             detector_fixed=args.detector_fixed)
    models = _resolve_models(args, config)
    manager = EngineManager(options)
    for request in (EngineRequest("detector", models.detector_family, models.detector_path),
                    EngineRequest("recognizer", models.recognizer_family, models.recognizer_path)):
        entry = manager.ensure(request, strict=True)
        figures = entry.metadata.get("verification") or {}
        print("{}: {} {} ({})".format(request.role, entry.engine_path, entry.fingerprint.precision.upper(),
                                      figures.get("result", entry.metadata.get("status"))))
    return 0


def _cache(args):
    from engine_builder.cache import EngineCache, default_engine_dir
    return EngineCache(os.path.abspath(args.engine_dir or default_engine_dir()))


def _summary(entry):
    # type: (object) -> dict
    fp, meta = entry.fingerprint, entry.metadata
    ver = meta.get("verification") or {}
    return {
        "engine": entry.engine_path, "model": meta.get("model"), "role": fp.role, "precision": fp.precision,
        "status": meta.get("status"), "tensorrt": fp.tensorrt, "l4t": fp.l4t, "gpu": fp.gpu_name,
        "sm": fp.compute_capability, "profile": [list(s) for s in fp.profile],
        "built_at": (meta.get("build") or {}).get("built_at"),
        "mean_cosine": ver.get("mean_cosine"), "recall": ver.get("recall"),
    }


def _list(args):
    # type: (argparse.Namespace) -> int
    cache = _cache(args)
    rows = [_summary(e) for e in cache.entries()]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    if not rows:
        print("no engines in {} (run `faceedge build-engines`)".format(cache.engine_dir))
        return 0
    for r in rows:
        agreement = "cos {:.4f}".format(r["mean_cosine"]) if r["mean_cosine"] is not None else (
            "recall {:.3f}".format(r["recall"]) if r["recall"] is not None else "-")
        print("{:<28} {:<10} {:<5} {:<12} TRT {:<9} L4T {:<7} {} sm_{}  {}  {}".format(
            r["model"], r["role"], r["precision"], r["status"], r["tensorrt"] or "-", r["l4t"] or "-",
            r["gpu"] or "-", (r["sm"] or "-").replace(".", ""), agreement, os.path.basename(r["engine"])))
    return 0


def _inspect(args):
    # type: (argparse.Namespace) -> int
    cache = _cache(args)
    want = args.engine
    for entry in cache.entries():
        names = (entry.engine_path, entry.metadata_path, os.path.basename(entry.engine_path))
        if want in names or os.path.abspath(want) in names or ("." + want) in os.path.basename(entry.engine_path):
            print(json.dumps(entry.metadata, indent=2, sort_keys=True))
            return 0
    raise ConfigError("no engine matches {!r} in {}: see `faceedge engines list`".format(want, cache.engine_dir))


def _clean(args):
    # type: (argparse.Namespace) -> int
    cache = _cache(args)
    paths = []
    if args.all:
        if os.path.isdir(cache.engine_dir):
            paths = [os.path.join(cache.engine_dir, n) for n in sorted(os.listdir(cache.engine_dir))
                     if n.endswith((".engine", ".json", ".cache", ".table", ".onnx")) or n.startswith(".tmp-")]
    else:
        current = _current_platform()
        for entry in cache.stale(current):
            paths += [entry.metadata_path, entry.engine_path]
        paths += cache.orphans()
        if current is None:
            sys.stderr.write("faceedge: TensorRT not importable here: engines built for other TensorRT/GPU "
                             "versions are kept (they are rebuilt on the device anyway)\n")
    for path in paths:
        if os.path.exists(path):
            print(("would remove " if args.dry_run else "removed ") + path)
            if not args.dry_run:
                os.unlink(path)
    return 0


def _current_platform():
    """A fingerprint carrying only this machine's platform fields, or None without TensorRT."""
    try:
        from edge.backends.cuda import PycudaAllocator
        from edge.nvidia import import_tensorrt
        from engine_builder.fingerprint import EngineFingerprint
        from engine_builder import platform as platmod
        trt = import_tensorrt()
        alloc = PycudaAllocator()
        with alloc.active():
            info = platmod.detect(trt, alloc.cuda)
    except Exception:  # BackendError, or no CUDA driver: nothing to compare against
        return None
    return EngineFingerprint("", "", "", "", ((), (), ()), "", info.tensorrt, info.cuda, info.l4t,
                             info.gpu_name, info.compute_capability, -1, {})
