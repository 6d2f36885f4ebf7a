"""The systemd units in systemd/: `systemd-analyze verify` clean (any output fails), the
supervision and hardening settings the daemon relies on, and the security exposure score.

No systemd as PID 1 is needed: `systemd-analyze verify` and `security --offline` read files.
"""
import os
import re
import shutil
import stat
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT_SRC = os.path.join(REPO, "systemd")
UNITS = ("faceedge.service", "faceedge-build.service", "faceedge-backup.service", "faceedge-backup.timer")
# install.sh adds it where systemd < 247 ignores LoadCredential=.
DROPIN = "faceedge.service.d/credentials-compat.conf"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not installed (apt-get install systemd)")


def read_unit(name):
    with open(os.path.join(UNIT_SRC, name)) as f:
        return f.read()


def settings(text):
    """key -> [values] over all sections (comments dropped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def render_units(tmp_path, dropin=False):
    """The units as install.sh writes them for a prefix in tmp_path, with ExecStart paths existing."""
    prefix = tmp_path / "opt"
    etc = tmp_path / "etc"
    unit_dir = tmp_path / "units"
    for d in (prefix / "venv" / "bin", etc, unit_dir):
        d.mkdir(parents=True)
    exe = prefix / "venv" / "bin" / "faceedge"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (etc / "install.env").write_text('FACEEDGE_BUILD_ARGS="--calibration /var/lib/faceedge/calibration"\n')
    if dropin:
        (unit_dir / os.path.dirname(DROPIN)).mkdir()
    for name in UNITS + ((DROPIN,) if dropin else ()):
        text = read_unit(name).replace("/opt/faceedge", str(prefix)).replace("/etc/faceedge", str(etc))
        (unit_dir / name).write_text(text)
    return unit_dir


def analyze(args, cwd):
    proc = subprocess.Popen(["systemd-analyze"] + args, cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_all_units_present():
    for name in UNITS:
        assert os.path.isfile(os.path.join(UNIT_SRC, name)), name


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_verify_clean(tmp_path, name):
    unit_dir = render_units(tmp_path)
    code, out, err = analyze(["verify", "./" + name], unit_dir)
    # Unknown keys only warn (exit 0): any output at all is a failure.
    assert code == 0 and not out.strip() and not err.strip(), "systemd-analyze verify {}:\n{}{}".format(
        name, out, err)


@needs_analyze
def test_verify_clean_with_the_credentials_dropin(tmp_path):
    unit_dir = render_units(tmp_path, dropin=True)
    code, out, err = analyze(["verify", "./faceedge.service"], unit_dir)
    assert code == 0 and not out.strip() and not err.strip(), out + err
    # systemd-analyze reads the drop-in: a typo there shows up too.
    path = unit_dir / DROPIN
    path.write_text(path.read_text().replace("RuntimeDirectoryMode", "RuntimeDirMode"))
    code, out, err = analyze(["verify", "./faceedge.service"], unit_dir)
    assert "RuntimeDirMode" in out + err


def test_credentials_dropin_provides_what_load_credential_would():
    """Same file, same name under $CREDENTIALS_DIRECTORY, readable only by the service user."""
    service = settings(read_unit("faceedge.service"))
    source = service["LoadCredential"][0].split(":", 1)[1]
    s = settings(read_unit(DROPIN))
    assert s["RuntimeDirectory"] == ["faceedge"] and s["RuntimeDirectoryMode"] == ["0700"]
    assert s["Environment"] == ["CREDENTIALS_DIRECTORY=/run/faceedge"]
    # "+": as root outside the sandbox (the source is root's, mode 0600).
    assert s["ExecStartPre"] == ["+/usr/bin/install -m 0400 -o faceedge -g faceedge {} "
                                 "/run/faceedge/mqtt_password".format(source)]


@needs_analyze
def test_verify_catches_a_bad_key(tmp_path):
    """The check above is meaningful: a typo produces output even though the exit code is 0."""
    unit_dir = render_units(tmp_path)
    path = unit_dir / "faceedge.service"
    path.write_text(path.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    code, out, err = analyze(["verify", "./faceedge.service"], unit_dir)
    assert "NoNewPrivilege" in out + err


def test_daemon_unit_supervision():
    s = settings(read_unit("faceedge.service"))
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == ["/opt/faceedge/venv/bin/faceedge run --config /etc/faceedge/config.toml"]
    assert s["Restart"] == ["on-failure"]
    watchdog = s["WatchdogSec"][0]
    assert re.match(r"^\d+s?$", watchdog) and 10 <= int(watchdog.rstrip("s")) <= 120
    assert int(s["StartLimitBurst"][0]) >= 3 and s["StartLimitIntervalSec"]
    assert "faceedge-build.service" in " ".join(s["After"])
    assert "faceedge-build.service" in " ".join(s["Wants"])
    assert s["WantedBy"] == ["multi-user.target"]


def test_daemon_unit_identity_and_credentials():
    s = settings(read_unit("faceedge.service"))
    assert s["User"] == ["faceedge"]
    assert s["SupplementaryGroups"] == ["video"]
    assert s["StateDirectory"] == ["faceedge"]
    assert s["LoadCredential"] == ["mqtt_password:/etc/faceedge/mqtt_password"]


def test_daemon_unit_hardening_keeps_cameras_and_gpu():
    s = settings(read_unit("faceedge.service"))
    for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("NoNewPrivileges", "yes"), ("DevicePolicy", "closed")):
        assert s[key] == [value], key
    assert "PrivateDevices" not in s  # it would hide /dev/video* and the GPU
    assert "MemoryDenyWriteExecute" not in s  # CUDA JIT needs W+X pages
    allowed = [v.split()[0] for v in s["DeviceAllow"]]
    for needed in ("char-video4linux", "char-nvhost*", "/dev/nvmap", "/dev/nvhost-ctrl-gpu",
                   "/dev/nvhost-as-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvidia0", "/dev/nvidiactl"):
        assert needed in allowed, needed
    assert all(v.split()[1] == "rw" for v in s["DeviceAllow"])
    # CSI capture: the argus socket must be visible inside the private /tmp.
    assert s["BindPaths"] == ["-/tmp/argus_socket"]
    # It writes only to its state directory: no extra writable paths.
    assert "ReadWritePaths" not in s


def test_build_unit():
    s = settings(read_unit("faceedge-build.service"))
    assert s["Type"] == ["oneshot"]
    assert s["ConditionPathExists"] == ["/etc/nv_tegra_release"]  # a no-op off-Jetson
    assert s["Before"] == ["faceedge.service"]
    timeout = s["TimeoutStartSec"][0]
    m = re.match(r"^(\d+)(h|min|s)?$", timeout)
    seconds = int(m.group(1)) * {"h": 3600, "min": 60, "s": 1, None: 1}[m.group(2)]
    assert seconds >= 3600, "a Nano needs a long build timeout"
    assert s["User"] == ["faceedge"] and s["StateDirectory"] == ["faceedge"]
    assert s["EnvironmentFile"] == ["/etc/faceedge/install.env"]


def test_build_unit_builds_what_the_daemon_looks_up():
    """The daemon's own config (the one faceedge.service runs with) decides the engines; the
    only extra from install.env is --calibration, which the config does not override."""
    from edge.cli import build_parser
    argv = settings(read_unit("faceedge-build.service"))["ExecStart"][0].split()
    daemon = settings(read_unit("faceedge.service"))["ExecStart"][0].split()
    assert argv[0] == "/opt/faceedge/venv/bin/faceedge" and argv[-1] == "$FACEEDGE_BUILD_ARGS"
    args = build_parser().parse_args(argv[1:-1] + ["--calibration", "/var/lib/faceedge/calibration"])
    assert args.command == "build-engines" and args.config == daemon[daemon.index("--config") + 1]
    for name in ("profile", "model_dir", "engine_dir", "precision", "max_batch", "opt_batch", "detector_size"):
        assert getattr(args, name) is None, name


def test_backup_timer():
    timer = settings(read_unit("faceedge-backup.timer"))
    assert timer["OnCalendar"] and timer["Persistent"] == ["true"]
    service = settings(read_unit("faceedge-backup.service"))
    assert service["Type"] == ["oneshot"]
    assert "gallery export" in service["ExecStart"][0]
    assert "/var/lib/faceedge/gallery/backups" in service["ExecStart"][0]


def _offline_security_supported():
    if shutil.which("systemd-analyze") is None:
        return False
    proc = subprocess.Popen(["systemd-analyze", "--version"], stdout=subprocess.PIPE, universal_newlines=True)
    out = proc.communicate()[0]
    m = re.search(r"systemd (\d+)", out)
    return bool(m) and int(m.group(1)) >= 250


@pytest.mark.skipif(not _offline_security_supported(), reason="needs systemd-analyze >= 250 (security --offline)")
@pytest.mark.parametrize("name,limit", [("faceedge.service", 3.0), ("faceedge-build.service", 2.5),
                                        ("faceedge-backup.service", 2.0)])
def test_security_exposure(tmp_path, name, limit):
    unit_dir = render_units(tmp_path)
    code, out, err = analyze(["security", "--offline=yes", "--no-pager", "./" + name], unit_dir)
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", out + err)
    assert m, out + err
    assert float(m.group(1)) <= limit, out
