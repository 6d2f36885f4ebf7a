"""Running the service in-process: real configs (edge.daemon.config), recording sinks."""
import json

from edge.daemon.config import config_from_dict


class RecordingPublisher(object):
    """Stands in for MQTT where a test is about the service loop, not the transport."""

    def __init__(self):
        self.events, self.stats, self.responses, self.health = [], [], [], []
        self.raw = []         # (topic, payload, retain): unknowns/state and the like
        self.started = self.stopped = False

    def start(self):
        self.started = True

    @property
    def sender_alive(self):
        return True

    def publish_event(self, payload):
        self.events.append(json.loads(payload))

    def publish_stats(self, stats):
        self.stats.append(stats)

    def publish_health(self, health):
        self.health.append(health)

    def publish_response(self, payload):
        self.responses.append(payload)

    def publish_raw(self, topic, payload, retain=False, qos=1):
        self.raw.append((topic, payload, retain))

    def topic(self, suffix):
        return "test/" + suffix

    def on_connected(self, hook):
        pass

    def on_command(self, callback):
        self.callback = callback

    def stop(self):
        self.stopped = True


class RecordingNotifier(object):
    def __init__(self, interval=0.0):
        self.messages = []
        self.interval = interval

    def ready(self):
        self.messages.append("READY=1")

    def status(self, text):
        self.messages.append("STATUS=" + text)

    def watchdog(self):
        self.messages.append("WATCHDOG=1")

    def stopping(self):
        self.messages.append("STOPPING=1")

    def watchdog_interval_s(self):
        return self.interval


def service_config(cameras, **sections):
    """A validated Config (the daemon's own type) for in-process services: cameras as dicts
    ({"name", "source", "type", "loop"}); sections: {section: {key: value}} over the defaults.
    Tracks end after 1 s without their face (the tests' videos are short)."""
    data = {"device": {"id": "test"}, "recognition": {"track_timeout_s": 1.0}, "cameras": list(cameras)}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data, "<test>")


def make_service(config, pipeline, gallery, publisher=None, notifier=None, **kwargs):
    """The service as `faceedge run` wires it, minus MQTT: recogniser, matcher updates, sinks,
    unknown identities (their commands are not routed here)."""
    from edge.commands.daemon import open_unknowns, rule_source
    from edge.daemon.matcher_updates import MatcherUpdates
    from edge.daemon.recognizer import FrameRecognizer, settings_from
    from edge.daemon.service import Service
    recognizer = FrameRecognizer(pipeline, settings_from(config, pipeline.threshold))
    matchers = MatcherUpdates(gallery, rule_source(config, gallery, pipeline))
    gallery.add_listener(matchers.changed)
    publisher = publisher or RecordingPublisher()
    if hasattr(publisher, "publish_raw"):
        kwargs.setdefault("unknowns", open_unknowns(config, gallery, pipeline, recognizer, publisher, None)[0])
    return Service(config, recognizer, matchers, publisher, notifier or RecordingNotifier(), **kwargs)


def write_config(path, tmp_path, model_dir, gallery_path, port, cameras, prefix="fe", extra=None):
    """A TOML config (the daemon's format), written by hand: no TOML writer on every Python.
    extra: {section: {key: value}} added to (or overriding) the sections written here."""
    def q(value):
        return json.dumps(value)      # a JSON string (and a JSON number/bool) is valid TOML
    sections = {"device": {"id": "testcam"},
                "models": {"profile": "default", "dir": model_dir, "backend": "onnxruntime"},
                "gallery": {"path": gallery_path},
                "mqtt": {"host": "127.0.0.1", "port": port, "prefix": prefix, "stats_interval_s": 1,
                         "queue_dir": str(tmp_path / "queue")}}
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    lines = []
    for section, values in sections.items():
        lines.append("[{}]".format(section))
        lines.extend("{} = {}".format(key, q(value)) for key, value in values.items())
    for cam in cameras:
        lines.append("[[cameras]]")
        for key, value in cam.items():
            lines.append("{} = {}".format(key, q(value)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def make_config(port, tmp_path, **mqtt):
    settings = dict({"host": "127.0.0.1", "port": port, "queue_dir": str(tmp_path / "queue"),
                     "client_id": "faceedge-test"}, **mqtt)
    return config_from_dict({"device": {"id": "door"}, "mqtt": settings})
