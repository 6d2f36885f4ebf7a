import logging
import os

import pytest

from edge.daemon.config import config_from_dict, default_config, load_config
from edge.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "faceedge.toml")


def write(tmp_path, text, name="config.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_for(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path + ": "), message
    return message


def test_the_example_loads_and_equals_the_defaults(monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    example = load_config(EXAMPLE)
    defaults = default_config()
    assert example._replace(source="") == defaults._replace(source="")
    assert defaults.mqtt.port == 1883 and defaults.mqtt.queue_max_events == 10000
    assert defaults.mqtt.client_id == "faceedge-" + defaults.device_id
    assert defaults.topic_root == "faceedge/" + defaults.device_id


def test_the_example_documents_every_option():
    from edge.daemon.config import CAMERA_SCHEMA, SCHEMA
    text = open(EXAMPLE).read()
    for section, keys in SCHEMA.items():
        assert "[{}]".format(section) in text
        for key, _, _, _ in keys:
            assert "{} =".format(key) in text, "{}.{} is not in the example".format(section, key)
    for key, _, _, _ in CAMERA_SCHEMA:
        assert "# {} =".format(key) in text, "cameras.{} is not in the example".format(key)


@pytest.mark.parametrize("text, key, what", [
    ("[mqtt]\nport = \"abc\"\n", "mqtt.port", "must be an integer"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "must be between 1 and 65535"),
    ("[mqtt]\nprot = 1883\n", "mqtt.prot", "unknown key"),
    ("[mqtt]\ntls_insecure = 1\n", "mqtt.tls_insecure", "must be true or false"),
    ("[mqtt]\nqueue_full = \"block\"\n", "mqtt.queue_full", "must be one of"),
    ("[mqtt]\nprefix = \"a/#\"\n", "mqtt.prefix", "without '+', '#'"),
    ("[mqtt]\npassword = \"x\"\n", "mqtt.username", "is required"),
    ("[mqtt]\ntls_ca = \"/nonexistent/ca.pem\"\n", "mqtt.tls_ca", "file not found"),
    ("[cameras]\nname = \"x\"\n", "cameras", "array of tables"),
    ("[[cameras]]\nsource = \"a.mp4\"\n", "cameras[0].name", "is required"),
    ("[[cameras]]\nname = \"a b\"\nsource = \"a.mp4\"\n", "cameras[0].name", "letters, digits"),
    ("[[cameras]]\nname = \"a\"\nsource = \"a.mp4\"\nroi = [10, 10, 5, 5]\n", "cameras[0].roi", "x2 > x1"),
    ("[[cameras]]\nname = \"a\"\nsource = \"a.mp4\"\n[[cameras]]\nname = \"a\"\nsource = \"b.mp4\"\n",
     "cameras[1].name", "used by another camera"),
    ("[recognition]\ndet_size = 100\n", "recognition.det_size", "multiple of 32"),
    ("[recognition]\nthreshold = 1.5\n", "recognition.threshold", "between"),
    ("[models]\nprofile = \"huge\"\n", "models.profile", "must be one of"),
    ("[models]\ndetector_family = \"yolo\"\ndetector_path = \"/x.onnx\"\n", "models.detector_family", "one of"),
    ("[models]\nrecognizer_family = \"arcface\"\n", "models.recognizer_path", "is required"),
    ("[limits]\nmax_name_length = 500\n", "limits.max_name_length", "between"),
    ("[logging]\nlevel = \"loud\"\n", "logging.level", "must be one of"),
    ("[camera]\nname = \"a\"\n", "camera", "unknown section"),
    ("[mqtt\nport = 1\n", "not valid TOML", ""),
])
def test_each_mistake_is_one_error_naming_file_and_key(tmp_path, text, key, what):
    message = error_for(tmp_path, text)
    assert key in message and what in message, message


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.toml"))
    assert "nope.toml" in str(info.value)


def test_a_full_config(tmp_path):
    model = tmp_path / "r100.onnx"
    model.write_bytes(b"x")
    config = load_config(write(tmp_path, """
[device]
id = "front-door"
[models]
recognizer_family = "arcface"
recognizer_path = "{}"
[[cameras]]
name = "door"
source = "rtsp://cam/1"
fps = 5
roi = [0, 0, 640, 480]
[[cameras]]
name = "garden"
source = "/dev/video0"
[mqtt]
host = "mqtt.lan"
prefix = "home/faces"
queue_full = "drop_newest"
[logging]
journal = false
""".format(model)))
    assert config.device_id == "front-door" and config.topic_root == "home/faces/front-door"
    assert config.models.recognizer == "arcface:{}".format(model) and config.models.detector == ""
    assert [c.name for c in config.cameras] == ["door", "garden"]
    assert config.cameras[0].fps == 5.0 and isinstance(config.cameras[0].fps, float)
    assert config.cameras[0].roi == [0, 0, 640, 480] and config.cameras[1].type == "auto"
    assert config.mqtt.queue_full == "drop_newest" and config.logging.journal == "no"


def test_password_from_file_and_never_in_repr_or_logs(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cr3t-pw\n")
    config = load_config(write(tmp_path, '[mqtt]\nusername = "door"\npassword_file = "{}"\n'.format(secret)))
    assert config.mqtt.password == "s3cr3t-pw"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config: %r / %s / %r", config, config, config.mqtt)
    assert "s3cr3t-pw" not in repr(config) and "s3cr3t-pw" not in str(config)
    assert "s3cr3t-pw" not in repr(config.mqtt) and "s3cr3t-pw" not in caplog.text
    assert "***" in repr(config.mqtt)


def test_a_secret_of_the_wrong_type_is_named_but_never_shown(tmp_path):
    path = write(tmp_path, '[mqtt]\nusername = "door"\npassword = 98765432123\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "mqtt.password: must be a string, got an integer" in message and "98765432123" not in message
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[mqtt]\nusername = 98765\n'))
    assert "got 98765" in str(info.value)          # not a secret: shown, so the user sees what is wrong


def test_systemd_credentials_are_used_automatically(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-credentials")
    (creds / "mqtt_tls_key").write_text("KEY")
    cert = tmp_path / "client.pem"
    cert.write_text("CERT")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = config_from_dict({"mqtt": {"username": "door", "tls_cert": str(cert)}})
    assert config.mqtt.password == "from-credentials"
    assert config.mqtt.tls_key == str(creds / "mqtt_tls_key")
    # an explicit password file wins over the credential
    other = tmp_path / "pw"
    other.write_text("explicit")
    assert config_from_dict({"mqtt": {"username": "door", "password_file": str(other)}}).mqtt.password == "explicit"


def test_an_unreadable_password_file_names_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError) as info:
        config_from_dict({"mqtt": {"username": "u", "password_file": str(tmp_path / "none")}}, "x.toml")
    assert str(info.value).startswith("x.toml: mqtt.password_file: cannot read")


def test_device_id_defaults_to_a_topic_safe_hostname(monkeypatch):
    import socket
    monkeypatch.setattr(socket, "gethostname", lambda: "jetson nano.local/#1")
    config = default_config()
    assert config.device_id == "jetson-nano-local--1"
    assert "#" not in config.topic_root and "+" not in config.topic_root


def test_data_dir_follows_systemd_state_directory(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/faceedge")
    monkeypatch.delenv("FACEEDGE_GALLERY", raising=False)
    config = default_config()
    assert config.gallery.path == "/var/lib/faceedge/gallery/gallery.db"
    assert config.mqtt.queue_dir == "/var/lib/faceedge/queue"
    assert config.engines.dir == "/var/lib/faceedge/engines"


@pytest.mark.parametrize("value, stored", [(True, "yes"), (False, "no"), ("auto", "auto")])
def test_flip_takes_booleans_or_auto(value, stored):
    assert config_from_dict({}).recognition.flip == "auto"
    assert config_from_dict({"recognition": {"flip": value}}).recognition.flip == stored


def test_flip_rejects_other_words():
    with pytest.raises(ConfigError, match="recognition.flip"):
        config_from_dict({"recognition": {"flip": "sometimes"}})


def test_a_credential_password_needs_a_username(tmp_path, monkeypatch):
    (tmp_path / "mqtt_password").write_text("secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match=r"mqtt.username.*CREDENTIALS_DIRECTORY"):
        config_from_dict({})
    assert config_from_dict({"mqtt": {"username": "door"}}).mqtt.password == "secret"
    (tmp_path / "mqtt_password").write_text("")      # install.sh's placeholder: anonymous
    assert config_from_dict({}).mqtt.password == ""


def test_engine_paths_expand_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    engines = config_from_dict({"engines": {"dir": "~/engines", "calibration_dir": "~/cal"}}).engines
    assert engines.dir == str(tmp_path / "engines") and engines.calibration_dir == str(tmp_path / "cal")


def test_detector_family_without_a_decoder_is_refused():
    with pytest.raises(ConfigError, match="models.detector_family"):
        config_from_dict({"models": {"detector_family": "yunet", "detector_path": "/m/yunet.onnx"}})


def test_journal_setting_decides_the_log_format(monkeypatch):
    import logging
    from edge.commands.daemon import _configure_logging
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        _configure_logging("info", "yes")
        assert not handler.formatter._fmt.startswith("%(asctime)s")
        _configure_logging("info", "auto")
        assert handler.formatter._fmt.startswith("%(asctime)s")
        monkeypatch.setenv("JOURNAL_STREAM", "8:1")
        _configure_logging("info", "no")
        assert handler.formatter._fmt.startswith("%(asctime)s")
    finally:
        root.removeHandler(handler)


def test_a_gallery_at_the_old_default_path_is_still_the_one_used(monkeypatch, tmp_path):
    """The default moved from <data dir>/gallery.db to <data dir>/gallery/gallery.db (a 0700
    directory); a device installed before keeps its people."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    monkeypatch.delenv("FACEEDGE_GALLERY", raising=False)
    assert default_config().gallery.path == str(tmp_path / "gallery" / "gallery.db")
    (tmp_path / "gallery.db").write_bytes(b"")
    assert default_config().gallery.path == str(tmp_path / "gallery.db")
