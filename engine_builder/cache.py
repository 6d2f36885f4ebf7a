"""The engine directory: engines with a metadata file each, timing and calibration caches.

Layout (plain files a user can inspect):
  <stem>.<precision>.<key>.engine   serialised TensorRT plan
  <stem>.<precision>.<key>.json     metadata: fingerprint, build, verification
  timing-<gpu>-trt<version>.cache   TensorRT timing cache (shared by all builds on this GPU)
  calib-<model>-<set>-<shape>-trt<version>.table   INT8 calibration table (per TensorRT version)
  <stem>.<precision>.<key>.new.*    a build being verified (same key as the engine it may replace)
An engine counts only when its metadata file exists; the metadata is renamed into place
after the engine, so an interrupted write never leaves a usable-looking half engine. A new
build stays a candidate until it verifies, so a refused or interrupted rebuild never
replaces the engine in use.
"""
import json
import os
import re
import time
from typing import Any, Dict, List, NamedTuple, Optional

from edge.errors import BackendError
from engine_builder import fingerprint as fpmod
from engine_builder.fingerprint import EngineFingerprint

METADATA_FORMAT = 1
TMP_PREFIX = ".tmp-"
CANDIDATE = ".new"

EngineEntry = NamedTuple("EngineEntry", [
    ("engine_path", str),
    ("metadata_path", str),
    ("fingerprint", EngineFingerprint),
    ("metadata", Dict[str, Any]),
])


def default_engine_dir():
    # type: () -> str
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "faceedge", "engines")


def write_atomic(path, data):
    # type: (str, bytes) -> None
    """Write to a temp file in the same directory, fsync, rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, "{}{}-{}".format(TMP_PREFIX, os.getpid(), os.path.basename(path)))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException: Ctrl-C in the middle of a write must not leave the temp file.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _safe(text):
    # type: (str) -> str
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class EngineCache(object):
    def __init__(self, engine_dir):
        # type: (str) -> None
        self.engine_dir = engine_dir

    def _ensure_dir(self):
        # type: () -> None
        try:
            if not os.path.isdir(self.engine_dir):
                os.makedirs(self.engine_dir)
        except OSError as exc:
            raise BackendError("cannot create engine directory {}: {} (set another engine dir)".format(
                self.engine_dir, exc.strerror))

    def base_path(self, fp, stem):
        # type: (EngineFingerprint, str) -> str
        return os.path.join(self.engine_dir, "{}.{}.{}".format(_safe(stem), fp.precision, fpmod.key(fp)))

    def timing_cache_path(self, gpu_name, tensorrt_version):
        # type: (str, str) -> str
        return os.path.join(self.engine_dir, "timing-{}-trt{}.cache".format(
            _safe(gpu_name or "gpu"), _safe(tensorrt_version or "unknown")))

    def calibration_table_path(self, model_sha256, calibration_sha256, shape, tensorrt):
        # type: (str, str, tuple, str) -> str
        """Keyed by the TensorRT version too: a table written by another TensorRT (before a JetPack
        upgrade) must not be fed to this one."""
        return os.path.join(self.engine_dir, "calib-{}-{}-{}-trt{}.table".format(
            model_sha256[:12], calibration_sha256[:12], "x".join(str(d) for d in shape),
            tensorrt or "unknown"))

    # -- reading --
    def entries(self):
        # type: () -> List[EngineEntry]
        out = []  # type: List[EngineEntry]
        if not os.path.isdir(self.engine_dir):
            return out
        for name in sorted(os.listdir(self.engine_dir)):
            if not name.endswith(".json") or name.startswith(TMP_PREFIX):
                continue
            entry = self._read(os.path.join(self.engine_dir, name))
            if entry is not None:
                out.append(entry)
        return out

    def _read(self, metadata_path):
        # type: (str) -> Optional[EngineEntry]
        try:
            with open(metadata_path, "r") as f:
                meta = json.load(f)
            fp = fpmod.from_dict(meta["fingerprint"])
        except (IOError, OSError, ValueError, KeyError, TypeError):
            return None      # unreadable metadata = no engine; `engines clean` removes it
        engine_path = metadata_path[:-len(".json")] + ".engine"
        return EngineEntry(engine_path, metadata_path, fp, meta)

    def find(self, fp, ignore=()):
        # type: (EngineFingerprint, tuple) -> Optional[EngineEntry]
        """The verified, present engine whose fingerprint equals `fp` except for the `ignore` fields."""
        for entry in self.entries():
            if entry.metadata.get("status") != "verified" or not os.path.isfile(entry.engine_path):
                continue
            if entry.fingerprint == fp or (
                    ignore and not [f for f in fpmod.differences(entry.fingerprint, fp) if f not in ignore]):
                return entry
        return None

    # -- writing --
    def store(self, fp, stem, engine_bytes, build_info):
        # type: (EngineFingerprint, str, bytes, Dict[str, Any]) -> EngineEntry
        """Store a freshly built engine as an 'unverified' candidate (see promote)."""
        self._ensure_dir()
        base = self.base_path(fp, stem) + CANDIDATE
        meta = {
            "format": METADATA_FORMAT,
            "model": stem,
            "status": "unverified",
            "fingerprint": fpmod.to_dict(fp),
            "build": dict(build_info, engine_bytes=len(engine_bytes)),
            "verification": None,
        }
        write_atomic(base + ".engine", bytes(engine_bytes))
        write_atomic(base + ".json", json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
        return EngineEntry(base + ".engine", base + ".json", fp, meta)

    def promote(self, entry):
        # type: (EngineEntry) -> EngineEntry
        """A verified candidate replaces the engine of the same fingerprint (engine first: see module doc)."""
        engine_path = entry.engine_path.replace(CANDIDATE + ".engine", ".engine")
        metadata_path = entry.metadata_path.replace(CANDIDATE + ".json", ".json")
        if engine_path == entry.engine_path:
            return entry
        os.replace(entry.engine_path, engine_path)
        os.replace(entry.metadata_path, metadata_path)
        return entry._replace(engine_path=engine_path, metadata_path=metadata_path)

    def set_status(self, entry, status, verification=None, reason=""):
        # type: (EngineEntry, str, Optional[Dict[str, Any]], str) -> EngineEntry
        meta = dict(entry.metadata)
        meta["status"] = status
        meta["status_reason"] = reason
        meta["status_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if verification is not None:
            meta["verification"] = verification
        write_atomic(entry.metadata_path, json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
        return entry._replace(metadata=meta)

    def remove(self, entry):
        # type: (EngineEntry) -> None
        paths = [entry.metadata_path, entry.engine_path]    # metadata first: see module doc
        if not entry.metadata_path.endswith(CANDIDATE + ".json"):
            paths.append(entry.engine_path[:-len(".engine")] + ".onnx")   # TensorRT 11's typed model
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass

    def retire_superseded(self, new_entry):
        # type: (EngineEntry) -> List[EngineEntry]
        """After `new_entry` verified: drop older engines of the same model and role that can no
        longer load here (other TensorRT/GPU/L4T) or that it replaces (same precision)."""
        removed = []
        for entry in self.entries():
            if entry.metadata_path == new_entry.metadata_path:
                continue
            same_model = (entry.fingerprint.role == new_entry.fingerprint.role
                          and entry.metadata.get("model") == new_entry.metadata.get("model"))
            if not same_model:
                continue
            if fpmod.platform_differences(entry.fingerprint, new_entry.fingerprint) \
                    or entry.fingerprint.precision == new_entry.fingerprint.precision:
                self.remove(entry)
                removed.append(entry)
        return removed

    def stale(self, current_platform_fp=None):
        # type: (Optional[EngineFingerprint]) -> List[EngineEntry]
        """Entries that cannot be used: rejected, broken, or (given a current fingerprint) built
        for another TensorRT/CUDA/L4T/GPU."""
        out = []
        for entry in self.entries():
            # an unverified candidate outlived the build that made it (killed, or it crashed)
            if entry.metadata.get("status") in ("rejected", "incompatible") \
                    or not os.path.isfile(entry.engine_path) or entry.metadata_path.endswith(CANDIDATE + ".json"):
                out.append(entry)
            elif current_platform_fp is not None and fpmod.platform_differences(
                    entry.fingerprint, current_platform_fp):
                out.append(entry)
        return out

    def orphans(self):
        # type: () -> List[str]
        """Temp files left by a killed build, engines (and TensorRT 11 typed models) without metadata."""
        if not os.path.isdir(self.engine_dir):
            return []
        names = os.listdir(self.engine_dir)
        out = [n for n in names if n.startswith(TMP_PREFIX)]
        out += [n for n in names if n.endswith((".engine", ".onnx")) and not n.startswith(TMP_PREFIX)
                and n.rsplit(".", 1)[0] + ".json" not in names]
        return [os.path.join(self.engine_dir, n) for n in sorted(out)]
