"""The daemon's configuration: one TOML file, validated at start.

An unknown key, a wrong type or an impossible value is one ConfigError naming the file and
the key; the daemon does not start. Every option and its default is in examples/faceedge.toml.
Secrets (the MQTT password) come from a file or systemd credentials, never only the command line.
"""
import os
import re
import socket
from typing import Any, Callable, List, NamedTuple, Optional

from edge.errors import ConfigError
from edge.gallery.store import MAX_NAME_LENGTH
from edge.detectors import FAMILIES as DETECTOR_FAMILIES
from edge.models.manifest import PROFILES
from edge.recognizers import FAMILIES as RECOGNIZER_FAMILIES
from edge.paths import data_dir, default_gallery_path

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_device_id():
    # type: () -> str
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "faceedge"


Models = NamedTuple("Models", [("profile", str), ("dir", str), ("backend", str), ("detector_family", str),
                               ("detector_path", str), ("recognizer_family", str), ("recognizer_path", str),
                               ("threads", int),
                               ("detector", str), ("recognizer", str)])  # derived "family:path" or ""
Engines = NamedTuple("Engines", [("dir", str), ("build_on_start", bool), ("precision", str), ("max_batch", int),
                                 ("calibration_dir", str)])
GalleryConfig = NamedTuple("GalleryConfig", [("path", str), ("report_on_change", bool), ("report_target_far", float),
                                             ("shared_id", str), ("shared_writer", bool)])
Camera = NamedTuple("Camera", [("name", str), ("source", str), ("type", str), ("loop", bool), ("fps", float),
                               ("roi", List[int]), ("width", int), ("height", int), ("latency_ms", int),
                               ("reconnect_max_s", float), ("codec", str), ("backend", str), ("transport", str),
                               ("open_timeout_s", float), ("read_timeout_s", float), ("hires_source", str),
                               ("hires_max_age_ms", int)])
Recognition = NamedTuple("Recognition", [("threshold", float), ("min_quality", float), ("det_size", int),
                                         ("det_confidence", float), ("min_face_px", int), ("track_iou", float),
                                         ("track_timeout_s", float), ("decision_min_frames", int),
                                         ("confident_margin", float), ("flip", str),
                                         ("false_match_rate", float)])
_Mqtt = NamedTuple("Mqtt", [("host", str), ("port", int), ("prefix", str), ("client_id", str), ("username", str),
                           ("password", str), ("password_file", str), ("tls_ca", str), ("tls_cert", str),
                           ("tls_key", str), ("tls_insecure", bool), ("qos", int), ("keepalive", int),
                           ("stats_interval_s", float), ("discovery_prefix", str), ("queue_dir", str),
                           ("queue_max_events", int), ("queue_full", str)])


class Mqtt(_Mqtt):
    __slots__ = ()

    def __repr__(self):
        # The password must never reach a log line.
        shown = self._replace(password="***" if self.password else "")
        return "Mqtt(" + ", ".join("{}={!r}".format(f, v) for f, v in zip(self._fields, shown)) + ")"


Snapshots = NamedTuple("Snapshots", [("enabled", bool), ("quality", int)])
Limits = NamedTuple("Limits", [("max_payload_bytes", int), ("max_image_bytes", int), ("max_image_pixels", int),
                               ("max_images_per_command", int), ("max_faces_per_frame", int),
                               ("max_name_length", int)])
Logging = NamedTuple("Logging", [("level", str), ("journal", str)])
Unknowns = NamedTuple("Unknowns", [("enabled", bool), ("max_tracks", int), ("keep_days", float)])


class Config(NamedTuple("Config", [("source", str), ("device_id", str), ("models", Models), ("engines", Engines),
                                   ("gallery", GalleryConfig), ("cameras", List[Camera]),
                                   ("recognition", Recognition), ("mqtt", Mqtt), ("snapshots", Snapshots),
                                   ("limits", Limits), ("logging", Logging), ("unknowns", Unknowns)])):
    __slots__ = ()

    def __repr__(self):
        # Mqtt's own repr masks the password.
        return "Config(" + ", ".join("{}={!r}".format(f, v) for f, v in zip(self._fields, self)) + ")"

    @property
    def topic_root(self):
        # type: () -> str
        return "{}/{}".format(self.mqtt.prefix, self.device_id)


# section -> [(key, type, default, check or None)]; check returns an error text or None.
Check = Optional[Callable[[Any], Optional[str]]]


def _between(low, high):
    def check(value):
        return None if low <= value <= high else "must be between {} and {}".format(low, high)
    return check


def _one_of(*choices):
    def check(value):
        return None if value in choices else "must be one of {}".format(", ".join(repr(c) for c in choices))
    return check


def _name(value):
    return None if _NAME.match(value) else "must be 1-64 letters, digits, '_' or '-'"


def _family(families):
    def check(value):
        return None if not value or value in families else "must be one of {}".format(", ".join(families))
    return check


def _topic_part(value):
    return None if value and not any(c in value for c in "+#\x00") else "must be non-empty, without '+', '#' or NUL"


SCHEMA = {
    "device": [("id", str, "", lambda v: None if not v or _NAME.match(v) else "must be letters, digits, '_' or '-'")],
    "models": [("profile", str, "default", None), ("dir", str, "", None),
               ("backend", str, "auto", _one_of("auto", "tensorrt", "onnxruntime")),
               ("detector_family", str, "", _family(DETECTOR_FAMILIES)), ("detector_path", str, "", None),
               ("recognizer_family", str, "", _family(RECOGNIZER_FAMILIES)), ("recognizer_path", str, "", None),
               ("threads", int, 0, _between(0, 256))],
    "engines": [("dir", str, "", None), ("build_on_start", bool, True, None),
                ("precision", str, "auto", _one_of("auto", "fp16", "int8", "fp32")),
                ("max_batch", int, 32, _between(1, 1024)), ("calibration_dir", str, "", None)],
    "gallery": [("path", str, "", None), ("report_on_change", bool, True, None),
                ("report_target_far", float, 0.001, _between(1e-6, 0.5)),
                # many doors, one gallery (docs/MANY_DOORS.md): "" = a private gallery
                ("shared_id", str, "", lambda v: None if not v or _NAME.match(v) else "must be 1-64 letters, digits, "
                 "'_' or '-'"),
                ("shared_writer", bool, True, None)],
    "recognition": [("threshold", float, 0.0, _between(0.0, 1.0)), ("min_quality", float, 0.35, _between(0.0, 1.0)),
                    ("det_size", int, 640, lambda v: None if 64 <= v <= 4096 and v % 32 == 0
                     else "must be a multiple of 32 between 64 and 4096"),
                    ("det_confidence", float, 0.5, _between(0.01, 1.0)), ("min_face_px", int, 24, _between(0, 10000)),
                    ("track_iou", float, 0.3, _between(0.0, 1.0)), ("track_timeout_s", float, 1.5, _between(0.05, 3600)),
                    ("decision_min_frames", int, 3, _between(1, 1000)),
                    ("confident_margin", float, 0.05, _between(0.0, 1.0)),
                    ("flip", str, "auto", _one_of("auto", "yes", "no")),
                    # share of strangers' faces matched to anyone at this gallery's size (edge.open_set)
                    ("false_match_rate", float, 0.01, _between(1e-6, 0.5))],
    "mqtt": [("host", str, "localhost", None), ("port", int, 1883, _between(1, 65535)),
             ("prefix", str, "faceedge", _topic_part), ("client_id", str, "", None),
             ("username", str, "", None), ("password", str, "", None), ("password_file", str, "", None),
             ("tls_ca", str, "", None), ("tls_cert", str, "", None), ("tls_key", str, "", None),
             ("tls_insecure", bool, False, None), ("qos", int, 1, _between(0, 2)), ("keepalive", int, 60, _between(5, 3600)),
             ("stats_interval_s", float, 30.0, _between(0.1, 86400)), ("discovery_prefix", str, "homeassistant", None),
             ("queue_dir", str, "", None), ("queue_max_events", int, 10000, _between(10, 10000000)),
             ("queue_full", str, "drop_oldest", _one_of("drop_oldest", "drop_newest"))],
    "snapshots": [("enabled", bool, False, None), ("quality", int, 85, _between(1, 100))],
    "limits": [("max_payload_bytes", int, 8 * 1024 * 1024, _between(1024, 1 << 30)),
               ("max_image_bytes", int, 4 * 1024 * 1024, _between(1024, 1 << 30)),
               ("max_image_pixels", int, 16000000, _between(1024, 1 << 31)),
               ("max_images_per_command", int, 20, _between(1, 1000)),
               ("max_faces_per_frame", int, 20, _between(1, 1000)),
               ("max_name_length", int, 100, _between(1, MAX_NAME_LENGTH))],
    "logging": [("level", str, "info", _one_of("debug", "info", "warning", "error")),
                ("journal", str, "auto", _one_of("auto", "yes", "no"))],
    # strangers' faces kept and grouped into unknown identities (issue 14, edge/unknowns): biometric data
    "unknowns": [("enabled", bool, True, None), ("max_tracks", int, 500, _between(0, 100000)),
                 ("keep_days", float, 30.0, _between(0.0, 3650.0))],
}
def _camera_type(value):
    from edge.daemon.camera import TYPES     # the one registry of camera kinds (camera imports this module)
    return _one_of(*TYPES)(value)


CAMERA_SCHEMA = [("name", str, None, _name), ("source", str, None, lambda v: None if v else "must not be empty"),
                 ("type", str, "auto", _camera_type),
                 ("loop", bool, False, None), ("fps", float, 0.0, _between(0.0, 1000.0)), ("roi", list, [], None),
                 ("width", int, 0, _between(0, 16384)), ("height", int, 0, _between(0, 16384)),
                 ("latency_ms", int, 200, _between(0, 10000)), ("reconnect_max_s", float, 30.0, _between(0.1, 3600)),
                 # issue 11: RTSP decoding, bounded opens/reads, face cut from the main stream (docs/CAMERAS.md)
                 ("codec", str, "h264", _one_of("h264", "h265", "mjpeg")),
                 ("backend", str, "auto", _one_of("auto", "gstreamer", "ffmpeg")),
                 ("transport", str, "auto", _one_of("auto", "tcp", "udp")),
                 ("open_timeout_s", float, 10.0, _between(0.5, 600)), ("read_timeout_s", float, 5.0, _between(0.5, 600)),
                 ("hires_source", str, "", None), ("hires_max_age_ms", int, 200, _between(1, 10000))]

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def _shown(key, value):
    # type: (str, object) -> str
    """The value for an error message; a secret's only by its type (it must never reach a log)."""
    last = key.rsplit(".", 1)[-1]
    if any(word in last for word in ("password", "secret", "token")) and not last.endswith("_file"):
        kind = "a boolean" if isinstance(value, bool) else _TYPE_NAMES.get(type(value), "a " + type(value).__name__)
        return "{} (value not shown: it is a secret)".format(kind)
    return repr(value)


def _value(source, key, value, kind):
    # bool is an int in Python and 1 is not a bool in TOML: check exactly.
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError("{}: {}: must be {}, got {}".format(source, key, _TYPE_NAMES[kind], _shown(key, value)))
    return value


def _section(source, prefix, table, schema):
    if not isinstance(table, dict):
        raise ConfigError("{}: {}: must be a table".format(source, prefix))
    known = set(k for k, _, _, _ in schema)
    for key in table:
        if key not in known:
            raise ConfigError("{}: {}.{}: unknown key (known: {})".format(source, prefix, key, ", ".join(sorted(known))))
    values = []
    for key, kind, default, check in schema:
        name = "{}.{}".format(prefix, key)
        if key not in table:
            if default is None:
                raise ConfigError("{}: {}: is required".format(source, name))
            values.append(default)
            continue
        value = _value(source, name, table[key], kind)
        problem = check(value) if check else None
        if problem:
            raise ConfigError("{}: {}: {}, got {}".format(source, name, problem, _shown(name, value)))
        values.append(value)
    return values


def _read_secret(source, key, path, allow_empty=False):
    # type: (str, str, str, bool) -> str
    try:
        with open(path) as f:
            secret = f.read().strip()
    except (IOError, OSError) as exc:
        raise ConfigError("{}: {}: cannot read {}: {}; check the path and its permissions".format(
            source, key, path, exc.strerror or exc))
    if not secret and not allow_empty:
        raise ConfigError("{}: {}: {} is empty".format(source, key, path))
    return secret


def config_from_dict(data, source="<config>"):
    # type: (dict, str) -> Config
    known = set(SCHEMA) | {"cameras"}
    for key in data:
        if key not in known:
            raise ConfigError("{}: {}: unknown section (known: {})".format(source, key, ", ".join(sorted(known))))
    for section, key in (("logging", "journal"), ("recognition", "flip")):
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), bool):
            # true/false reads naturally in TOML; stored as "yes"/"no" beside "auto".
            data = dict(data, **{section: dict(table, **{key: "yes" if table[key] else "no"})})
    sections = dict((name, _section(source, name, data.get(name, {}), schema)) for name, schema in SCHEMA.items())
    device_id = sections["device"][0] or default_device_id()
    base = data_dir()
    models = _models(source, Models(*(sections["models"] + ["", ""])), base)
    engines = Engines(*sections["engines"])
    engines = engines._replace(dir=os.path.expanduser(engines.dir) or os.path.join(base, "engines"),
                               calibration_dir=os.path.expanduser(engines.calibration_dir))
    gallery = GalleryConfig(*sections["gallery"])
    gallery = gallery._replace(path=os.path.expanduser(gallery.path) or default_gallery_path())
    cameras_raw = data.get("cameras", [])
    if not isinstance(cameras_raw, list):
        raise ConfigError("{}: cameras: must be an array of tables ([[cameras]])".format(source))
    cameras = []
    for i, table in enumerate(cameras_raw):
        camera = _camera(source, "cameras[{}]".format(i), table)
        if any(c.name == camera.name for c in cameras):
            raise ConfigError("{}: cameras[{}].name: {!r} is used by another camera".format(source, i, camera.name))
        cameras.append(camera)
    mqtt = _mqtt(source, Mqtt(*sections["mqtt"]), device_id, base)
    return Config(source, device_id, models, engines, gallery, cameras, Recognition(*sections["recognition"]),
                  mqtt, Snapshots(*sections["snapshots"]), Limits(*sections["limits"]), Logging(*sections["logging"]),
                  Unknowns(*sections["unknowns"]))


def _camera(source, prefix, table):
    # type: (str, str, dict) -> Camera
    camera = Camera(*_section(source, prefix, table, CAMERA_SCHEMA))
    if camera.roi and (len(camera.roi) != 4 or not all(isinstance(v, int) and v >= 0 for v in camera.roi)
                       or camera.roi[2] <= camera.roi[0] or camera.roi[3] <= camera.roi[1]):
        raise ConfigError("{}: {}.roi: must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {!r}"
                          .format(source, prefix, camera.roi))
    return camera


def camera_spec(name, source, **fields):
    # type: (str, str, **object) -> Camera
    """A camera as a [[cameras]] entry would give it (the schema's defaults and checks): for a
    camera named on the command line, tests and probes. ConfigError when a field is wrong."""
    table = dict(fields, name=name, source=source)
    if isinstance(table.get("roi"), tuple):
        table["roi"] = list(table["roi"])
    if table.get("roi") is None:
        table.pop("roi", None)
    return _camera("camera " + name, "camera", table)


def _models(source, models, base):
    # type: (str, Models, str) -> Models
    if models.profile not in PROFILES:
        raise ConfigError("{}: models.profile: must be one of {}, got {!r}".format(
            source, ", ".join(sorted(PROFILES)), models.profile))
    refs = {}
    for role in ("detector", "recognizer"):
        family, path = getattr(models, role + "_family"), getattr(models, role + "_path")
        if bool(family) != bool(path):
            missing = "path" if family else "family"
            raise ConfigError("{}: models.{}_{}: is required when models.{}_{} is set (custom ONNX by family)"
                              .format(source, role, missing, role, "family" if family else "path"))
        refs[role] = "{}:{}".format(family, os.path.expanduser(path)) if family else ""
    return models._replace(dir=os.path.expanduser(models.dir) if models.dir else os.path.join(base, "models"),
                           detector_path=os.path.expanduser(models.detector_path),
                           recognizer_path=os.path.expanduser(models.recognizer_path), **refs)


def _mqtt(source, mqtt, device_id, base):
    # type: (str, Mqtt, str, str) -> Mqtt
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")

    def credential(name):
        # type: (str) -> str
        path = os.path.join(credentials, name) if credentials else ""
        return path if path and os.path.isfile(path) else ""

    if mqtt.password and mqtt.password_file:
        raise ConfigError("{}: mqtt.password_file: set either mqtt.password or mqtt.password_file, not both"
                          .format(source))
    password = mqtt.password
    if mqtt.password_file:
        password = _read_secret(source, "mqtt.password_file", os.path.expanduser(mqtt.password_file))
    elif not password and credential("mqtt_password"):
        # install.sh always provides the credential; left empty it means an anonymous broker.
        password = _read_secret(source, "$CREDENTIALS_DIRECTORY/mqtt_password", credential("mqtt_password"),
                                allow_empty=True)
    if password and not mqtt.username:
        where = "mqtt.password" if mqtt.password else (
            "mqtt.password_file" if mqtt.password_file else "$CREDENTIALS_DIRECTORY/mqtt_password")
        raise ConfigError("{}: mqtt.username: is required when a password is set ({})".format(source, where))
    tls_key = os.path.expanduser(mqtt.tls_key) or credential("mqtt_tls_key")
    for key, path in (("tls_ca", mqtt.tls_ca), ("tls_cert", mqtt.tls_cert), ("tls_key", mqtt.tls_key)):
        if path and path != "system" and not os.path.isfile(os.path.expanduser(path)):
            raise ConfigError("{}: mqtt.{}: file not found: {}".format(source, key, path))
    if mqtt.tls_key and not mqtt.tls_cert:
        raise ConfigError("{}: mqtt.tls_cert: is required with mqtt.tls_key (client certificate)".format(source))
    return mqtt._replace(password=password, client_id=mqtt.client_id or "faceedge-" + device_id,
                         queue_dir=os.path.expanduser(mqtt.queue_dir) or os.path.join(base, "queue"),
                         tls_ca=os.path.expanduser(mqtt.tls_ca), tls_cert=os.path.expanduser(mqtt.tls_cert),
                         tls_key=tls_key if mqtt.tls_cert else "")


def _toml():
    try:
        import tomllib  # novermin (3.11+, tomli below)
        return tomllib
    except ImportError:
        import tomli
        return tomli


def load_config(path):
    # type: (str) -> Config
    toml = _toml()
    try:
        with open(path, "rb") as f:
            data = toml.load(f)
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read the config {}: {}".format(path, exc.strerror or exc))
    except toml.TOMLDecodeError as exc:
        raise ConfigError("{}: not valid TOML: {}".format(path, exc))
    return config_from_dict(data, path)


def default_config():
    # type: () -> Config
    return config_from_dict({}, "<defaults>")
