"""What this machine is: L4T/JetPack release, board, TensorRT and CUDA versions, GPU.

Everything here is read, never guessed from version strings alone; missing pieces are "".
"""
import re
import subprocess
from typing import NamedTuple, Optional, Tuple

PlatformInfo = NamedTuple("PlatformInfo", [
    ("l4t", str),                  # "32.7.4", "" off-Jetson
    ("jetpack", str),              # "4.6", "5.1", "6.x" ... derived from L4T, "" off-Jetson
    ("board", str),                # /proc/device-tree/model
    ("tensorrt", str),             # tensorrt.__version__
    ("cuda", str),                 # CUDA version pycuda was built against, "10.2"
    ("cuda_driver", str),          # driver API version, "10.2"
    ("gpu_name", str),
    ("compute_capability", str),   # "7.2"
    ("fast_int8", bool),
    ("dla_cores", int),
])

# L4T major.minor -> JetPack (facts/jetson.md matrix).
_JETPACK = (("32.7", "4.6"), ("32.6", "4.6"), ("32.5", "4.5"), ("35", "5.1"), ("36", "6.x"), ("39", "7.x"))


def parse_nv_tegra_release(text):
    # type: (str) -> str
    """'# R32 (release), REVISION: 7.4, ...' -> '32.7.4'; '' when it is not that format."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return "{}.{}".format(m.group(1), m.group(2)) if m else ""


def _dpkg_l4t():
    # type: () -> str
    try:
        out = subprocess.check_output(["dpkg-query", "-W", "-f=${Version}", "nvidia-l4t-core"],
                                      stderr=subprocess.DEVNULL, universal_newlines=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    m = re.match(r"(\d+\.\d+(?:\.\d+)?)", out.strip())
    return m.group(1) if m else ""


def read_l4t(release_file="/etc/nv_tegra_release"):
    # type: (str) -> str
    try:
        with open(release_file, "r") as f:
            found = parse_nv_tegra_release(f.read())
        if found:
            return found
    except (IOError, OSError):
        pass
    return _dpkg_l4t()


def jetpack_for_l4t(l4t):
    # type: (str) -> str
    for prefix, jetpack in _JETPACK:
        if l4t == prefix or l4t.startswith(prefix + "."):
            return jetpack
    return ""


def read_board(model_file="/proc/device-tree/model"):
    # type: (str) -> str
    try:
        with open(model_file, "rb") as f:
            return f.read().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except (IOError, OSError):
        return ""


def has_fast_int8(compute_capability):
    # type: (str) -> bool
    """Xavier sm_72, Orin sm_87 and desktop GPUs from sm_61 have fast INT8; Nano sm_53 and TX2 sm_62 do not."""
    try:
        major, minor = (int(x) for x in compute_capability.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) == (6, 1) or major >= 7


def _version_text(value):
    # type: (object) -> str
    """pycuda reports versions as (10, 2, 0) tuples or ints like 10020."""
    if isinstance(value, tuple):
        return ".".join(str(v) for v in value[:2])
    if isinstance(value, int) and value > 1000:
        return "{}.{}".format(value // 1000, (value % 1000) // 10)
    return str(value or "")


def detect(trt=None, cuda=None, device=0, release_file="/etc/nv_tegra_release",
           model_file="/proc/device-tree/model", dla_cores=0):
    # type: (Optional[object], Optional[object], int, str, str, int) -> PlatformInfo
    """`trt` and `cuda` are the imported tensorrt and pycuda.driver modules (or None off-GPU).

    `dla_cores` comes from `Builder.num_DLA_cores` (a Builder needs a live CUDA driver)."""
    l4t = read_l4t(release_file)
    cuda_version = cuda_driver = gpu_name = cc = ""
    if cuda is not None:
        cuda.init()
        dev = cuda.Device(device)
        gpu_name = str(dev.name())
        cap = dev.compute_capability()  # type: Tuple[int, int]
        cc = "{}.{}".format(cap[0], cap[1])
        cuda_version = _version_text(cuda.get_version())
        cuda_driver = _version_text(cuda.get_driver_version())
    return PlatformInfo(l4t=l4t, jetpack=jetpack_for_l4t(l4t), board=read_board(model_file),
                        tensorrt=str(getattr(trt, "__version__", "")) if trt is not None else "",
                        cuda=cuda_version, cuda_driver=cuda_driver, gpu_name=gpu_name,
                        compute_capability=cc, fast_int8=has_fast_int8(cc), dla_cores=dla_cores)


def environment_summary(info):
    # type: (PlatformInfo) -> str
    parts = ["TensorRT {}".format(info.tensorrt or "-"), "CUDA {}".format(info.cuda or "-")]
    if info.l4t:
        parts.append("L4T {} (JetPack {})".format(info.l4t, info.jetpack or "?"))
    if info.gpu_name:
        parts.append("{} sm_{}".format(info.gpu_name, info.compute_capability.replace(".", "")))
    return ", ".join(parts)
