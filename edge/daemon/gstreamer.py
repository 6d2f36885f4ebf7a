"""GStreamer pipeline strings for cv2.VideoCapture(..., cv2.CAP_GSTREAMER) (Jetson CSI/USB/RTSP).

Every value is validated before it is put into the string, so a camera setting cannot add
elements (`!`), properties (whitespace, quotes) or escape the pipeline. Decoders are chosen by
asking GStreamer which elements exist (nvv4l2decoder on a Jetson, the libav ones elsewhere).
"""
import logging
import re
import shutil
import subprocess
import threading
from typing import Optional

from edge.errors import ConfigError

log = logging.getLogger("faceedge.camera")

_DEVICE = re.compile(r"^/dev/[A-Za-z0-9_./-]+\Z")
_URL = re.compile(r"^(rtsp|rtsps|http|https)://[A-Za-z0-9._~:/?#\[\]@&+,;=%-]+\Z")
_RAW_FORBIDDEN = re.compile(r"[;&|`$<>\\\n\r]")

# newest frame only, never waiting for the clock: the service takes frames as it can
APPSINK = "appsink drop=true max-buffers=1 sync=false"
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")

# per codec: depayloader and parser, hardware decoder (Jetson) then software decoders
CODECS = {
    "h264": ("rtph264depay ! h264parse", ["nvv4l2decoder", "avdec_h264"]),
    "h265": ("rtph265depay ! h265parse", ["nvv4l2decoder", "avdec_h265"]),
    "mjpeg": ("rtpjpegdepay", ["nvv4l2decoder mjpeg=1", "jpegdec"]),
}
_found = {}      # element name -> bool
_found_lock = threading.Lock()


def mask_credentials(text):
    # type: (object) -> str
    """`rtsp://user:pass@host/...` -> `rtsp://***@host/...` anywhere in a text (logs, stats, errors)."""
    return _CREDENTIALS.sub(r"\1***@", str(text))


def _ask_gstreamer(name):
    # type: (str) -> bool
    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
        if not Gst.is_initialized():
            Gst.init(None)
        return Gst.ElementFactory.find(name) is not None
    except (ImportError, ValueError):
        pass
    tool = shutil.which("gst-inspect-1.0")
    if tool is None:
        return False
    with open("/dev/null", "wb") as null:
        return subprocess.call([tool, name], stdout=null, stderr=null, timeout=30) == 0


def has_element(name):
    # type: (str) -> bool
    """Whether this machine's GStreamer has the element (asked once, then remembered)."""
    with _found_lock:
        if name not in _found:
            try:
                _found[name] = _ask_gstreamer(name)
            except (OSError, subprocess.SubprocessError):
                _found[name] = False
        return _found[name]


def choose_decoder(codec="h264"):
    # type: (str) -> str
    """The decoder element for a codec that exists here (hardware first); ConfigError if none."""
    if codec not in CODECS:
        raise ConfigError("camera codec must be one of {}, got {!r}".format(", ".join(sorted(CODECS)), codec))
    candidates = CODECS[codec][1]
    for element in candidates:
        if has_element(element.split()[0]):
            return element
    raise ConfigError("no GStreamer decoder for {} here (looked for {}; install gstreamer1.0-libav)".format(
        codec, ", ".join(c.split()[0] for c in candidates)))


def _decode_chain(decoder):
    # type: (str) -> str
    if decoder.startswith("nvv4l2decoder"):
        # NVMM buffers: the VIC converts to BGRx, videoconvert drops the x
        return decoder + " ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert"
    return decoder + " ! videoconvert"


def _positive_int(value, what, maximum=100000):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError("{} must be a whole number, got {!r}".format(what, value))
    if number <= 0 or number > maximum or str(value).strip() != str(number):
        raise ConfigError("{} must be a whole number between 1 and {}, got {!r}".format(what, maximum, value))
    return number


def _range_int(value, what, low, high):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError("{} must be a whole number, got {!r}".format(what, value))
    if not low <= number <= high or str(value).strip() != str(number):
        raise ConfigError("{} must be between {} and {}, got {!r}".format(what, low, high, value))
    return number


def device_path(value):
    # type: (object) -> str
    text = str(value)
    if text.isdigit():
        text = "/dev/video" + text
    if not _DEVICE.match(text) or ".." in text:
        raise ConfigError("camera device must look like /dev/video0, got {!r}".format(value))
    return text


def stream_url(value):
    # type: (object) -> str
    text = str(value)
    if not _URL.match(text) or "!" in text:
        raise ConfigError("camera URL must be rtsp:// or http(s):// without spaces, quotes or '!', "
                          "got {!r}".format(value))
    return text


def csi_pipeline(sensor_id=0, width=1280, height=720, fps=30, flip_method=0):
    # type: (object, object, object, object, object) -> str
    sensor = _range_int(sensor_id, "CSI sensor id", 0, 15)
    w = _positive_int(width, "camera width", 8192)
    h = _positive_int(height, "camera height", 8192)
    rate = _positive_int(fps, "camera fps", 240)
    flip = _range_int(flip_method, "flip method", 0, 7)
    return ("nvarguscamerasrc sensor-id={} ! video/x-raw(memory:NVMM),width={},height={},framerate={}/1,"
            "format=NV12 ! nvvidconv flip-method={} ! video/x-raw,format=BGRx ! videoconvert ! "
            "video/x-raw,format=BGR ! {}".format(sensor, w, h, rate, flip, APPSINK))


def usb_pipeline(device="/dev/video0", width=640, height=480, fps=30, mjpeg=False):
    # type: (object, object, object, object, bool) -> str
    dev = device_path(device)
    w = _positive_int(width, "camera width", 8192)
    h = _positive_int(height, "camera height", 8192)
    rate = _positive_int(fps, "camera fps", 240)
    caps = "image/jpeg" if mjpeg else "video/x-raw"
    decode = " ! jpegdec" if mjpeg else ""
    return ("v4l2src device={} ! {},width={},height={},framerate={}/1{} ! videoconvert ! "
            "video/x-raw,format=BGR ! {}".format(dev, caps, w, h, rate, decode, APPSINK))


def rtsp_pipeline(url, latency_ms=200, codec="h264", decoder=None, transport="auto", timeout_s=10):
    # type: (object, object, str, Optional[str], str, object) -> str
    """rtspsrc -> depay/parse -> decoder -> BGR appsink; `decoder` None: choose_decoder(codec)."""
    location = stream_url(url)
    if not location.startswith("rtsp"):
        raise ConfigError("an rtsp camera needs an rtsp:// URL, got {!r}".format(mask_credentials(url)))
    latency = _range_int(latency_ms, "RTSP latency_ms", 0, 10000)
    timeout_us = _range_int(timeout_s, "RTSP timeout", 1, 3600) * 1000000
    if transport not in ("auto", "tcp", "udp"):
        raise ConfigError("RTSP transport must be auto, tcp or udp, got {!r}".format(transport))
    chosen = decoder or choose_decoder(codec)
    protocols = "" if transport == "auto" else " protocols={}".format(transport)
    return ("rtspsrc location={} latency={}{} tcp-timeout={} ! {} ! {} ! video/x-raw,format=BGR ! {}".format(
        location, latency, protocols, timeout_us, CODECS[codec][0], _decode_chain(chosen), APPSINK))


def raw_pipeline(text):
    # type: (object) -> str
    """An expert's own pipeline: must end in an appsink; no shell metacharacters."""
    pipeline = str(text).strip()
    if not pipeline or _RAW_FORBIDDEN.search(pipeline):
        raise ConfigError("GStreamer pipeline must not be empty or contain ; & | ` $ < > \\ or newlines")
    if not pipeline.split("!")[-1].strip().startswith("appsink"):
        raise ConfigError("GStreamer pipeline must end with an appsink element (e.g. '! appsink drop=true "
                          "max-buffers=1')")
    return pipeline
