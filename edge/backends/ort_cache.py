"""ONNX Runtime's optimised graph kept on disk, so the next session starts five times faster.

Creating the SFace session costs about 0.3 s of CPU (the PRelu rewrite of cpu_graph, then ONNX
Runtime's graph optimisation); loading the saved optimised graph with optimisation off costs
0.06 s, and every `faceedge` command and daemon start pays it. The saved graph can hold layout
nodes chosen for this CPU's instruction set, so it is keyed by the model's sha256, ONNX Runtime's
version, the CPU's model and flags, and the rewrite's version; anything else is a miss and the
graph is built again. A cache that cannot be written or read is skipped.

  $FACEEDGE_ORT_CACHE   the directory (default <data dir>/onnxruntime), or "off"
"""
import functools
import hashlib
import json
import logging
import os
import platform
import threading
from typing import Optional

from edge.errors import ModelError
from edge.models.manifest import model_fingerprint
from edge.paths import data_dir

log = logging.getLogger("faceedge.backends")

REWRITE_VERSION = 1     # bump when cpu_graph's rewrite changes
SUFFIX = ".ort.onnx"


def cache_dir():
    # type: () -> Optional[str]
    setting = os.environ.get("FACEEDGE_ORT_CACHE", "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    return setting or os.path.join(data_dir(), "onnxruntime")


@functools.lru_cache(maxsize=1)
def cpu_signature():
    # type: () -> str
    """The CPU's model and instruction-set flags (x86 `flags`, ARM `Features`), once per process."""
    lines = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags", "Features", "CPU part", "CPU implementer") and line not in lines:
                    lines.append(line)      # the same for every core: kept once
    except (IOError, OSError):
        pass
    return platform.machine() + "".join(lines)


def cached_path(model_path, ort_version):
    # type: (str, str) -> Optional[str]
    """Where the optimised graph of model_path is (or would be) kept; None: no cache."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        sha256 = model_fingerprint(model_path)     # cached per process; the pipeline needs it anyway
    except ModelError:
        return None
    key = json.dumps([sha256, ort_version, cpu_signature(), REWRITE_VERSION])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
    name = os.path.splitext(os.path.basename(model_path))[0]
    return os.path.join(directory, "{}-{}{}".format(name, digest, SUFFIX))


def writable_temp(final):
    # type: (str) -> Optional[str]
    """A temporary name beside `final` for ONNX Runtime to save into, or None if the directory
    cannot be made or written."""
    directory = os.path.dirname(final)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
    except OSError as exc:
        log.debug("no ONNX Runtime graph cache in %s: %s", directory, exc)
        return None
    if not os.access(directory, os.W_OK):
        return None
    return os.path.join(directory, ".tmp-{}-{}-{}".format(os.getpid(), threading.current_thread().ident,
                                                           os.path.basename(final)))


def publish(temp, final):
    # type: (str, str) -> None
    """Move a saved graph into place (atomic: a concurrent reader sees the old file or the new)."""
    try:
        os.replace(temp, final)
    except OSError as exc:
        log.debug("ONNX Runtime graph cache %s not kept: %s", final, exc)
        discard(temp)


def discard(path):
    # type: (str) -> None
    try:
        os.unlink(path)
    except OSError:
        pass
