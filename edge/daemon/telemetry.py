"""Device telemetry for the stats topic: jtop (jetson-stats) when it is importable and its
service answers, else CPU load, memory and temperatures from /proc and /sys.

jetson-stats is optional (AGPL, needs the root `jtop.service` and group `jtop`): imported
lazily, and any failure falls back to /proc for good. Called every stats interval, never
in the hot path.
"""
import glob
import logging
import os
from typing import Any, Callable, Dict, Optional

log = logging.getLogger(__name__)

# jtop stats keys worth forwarding (numbers only; the rest varies by board and version).
_JTOP_PREFIXES = ("CPU", "GPU", "RAM", "SWAP", "Temp", "Power", "Fan", "EMC", "NVENC", "NVDEC", "DLA")


def _default_jtop():
    from jtop import jtop  # lazy: optional, AGPL, Jetson only
    return jtop()


class Telemetry(object):
    def __init__(self, jtop_factory=None, proc_root="/proc", sys_root="/sys"):
        # type: (Optional[Callable[[], Any]], str, str) -> None
        """jtop_factory() -> an object with start(), ok(), stats (dict) and close(); tests pass a fake."""
        self._factory = jtop_factory or _default_jtop
        self._proc = proc_root
        self._sys = sys_root
        self._jtop = None  # type: Any
        self._jtop_failed = False

    @property
    def source(self):
        # type: () -> str
        return "jtop" if self._jtop is not None else "proc"

    def _open_jtop(self):
        if self._jtop is not None or self._jtop_failed:
            return
        try:
            client = self._factory()
            client.start()
            self._jtop = client
        except Exception as exc:    # ImportError off-Jetson; JtopException without the service
            self._jtop_failed = True
            log.info("device telemetry from /proc (jtop not available: %s)", exc or type(exc).__name__)

    def snapshot(self):
        # type: () -> Dict[str, Any]
        self._open_jtop()
        if self._jtop is not None:
            try:
                if not hasattr(self._jtop, "ok") or self._jtop.ok():
                    return self._from_jtop(self._jtop.stats)
            except Exception as exc:
                log.warning("jtop failed, using /proc from now on: %s", exc)
                self.close()
                self._jtop_failed = True
        return self._from_proc()

    def _from_jtop(self, stats):
        # type: (Dict[str, Any]) -> Dict[str, Any]
        out = {"source": "jtop"}  # type: Dict[str, Any]
        for key, value in stats.items():
            if str(key).startswith(_JTOP_PREFIXES) and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[str(key)] = round(float(value), 2)
        out.update(self._from_proc(load_only=True))
        return out

    def _from_proc(self, load_only=False):
        # type: (bool) -> Dict[str, Any]
        out = {} if load_only else {"source": "proc"}  # type: Dict[str, Any]
        try:
            with open(os.path.join(self._proc, "loadavg")) as f:
                out["load_1m"] = float(f.read().split()[0])
        except (IOError, OSError, ValueError, IndexError):
            pass
        out["cpus"] = os.cpu_count() or 1
        if load_only:
            return out
        meminfo = _read_meminfo(os.path.join(self._proc, "meminfo"))
        if "MemTotal" in meminfo:
            out["mem_total_mb"] = round(meminfo["MemTotal"] / 1024.0, 1)
            available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
            out["mem_used_mb"] = round((meminfo["MemTotal"] - available) / 1024.0, 1)
        rss = _read_meminfo(os.path.join(self._proc, "self", "status")).get("VmRSS")
        if rss is not None:
            out["process_rss_mb"] = round(rss / 1024.0, 1)
        temps = {}
        for zone in sorted(glob.glob(os.path.join(self._sys, "class", "thermal", "thermal_zone*"))):
            try:
                with open(os.path.join(zone, "type")) as f:
                    name = f.read().strip()
                with open(os.path.join(zone, "temp")) as f:
                    temps[name] = round(int(f.read().strip()) / 1000.0, 1)
            except (IOError, OSError, ValueError):
                continue
        if temps:
            out["temperature_c"] = temps
        return out

    def close(self):
        # type: () -> None
        if self._jtop is not None:
            try:
                self._jtop.close()
            except Exception:
                pass
            self._jtop = None


def _read_meminfo(path):
    # type: (str) -> Dict[str, int]
    """'Key:   123 kB' lines -> {Key: 123} (kB)."""
    values = {}  # type: Dict[str, int]
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    values[key.strip()] = int(parts[0])
    except (IOError, OSError):
        pass
    return values
