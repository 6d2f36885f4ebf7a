"""GStreamer pipeline strings for cv2.VideoCapture(..., cv2.CAP_GSTREAMER) (Jetson CSI/USB/RTSP).

Every value is validated before it is put into the string, so a camera setting cannot add
elements (`!`), properties (whitespace, quotes) or escape the pipeline.
"""
import re

from edge.errors import ConfigError

_DEVICE = re.compile(r"^/dev/[A-Za-z0-9_./-]+\Z")
_URL = re.compile(r"^(rtsp|rtsps|http|https)://[A-Za-z0-9._~:/?#\[\]@&+,;=%-]+\Z")
_RAW_FORBIDDEN = re.compile(r"[;&|`$<>\\\n\r]")

APPSINK = "appsink drop=true max-buffers=1"


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


def rtsp_pipeline(url, latency_ms=200):
    # type: (object, object) -> str
    location = stream_url(url)
    if not location.startswith("rtsp"):
        raise ConfigError("an rtsp camera needs an rtsp:// URL, got {!r}".format(url))
    latency = _range_int(latency_ms, "RTSP latency_ms", 0, 10000)
    return ("rtspsrc location={} latency={} ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv ! "
            "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true sync=false".format(location, latency))


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
