"""install.sh: shellcheck, the --dry-run plan on fake Jetson roots (JetPack 4.6 Nano, 5.1
Xavier, 6.x Orin, 7.x Thor, a broken Nano) and a plain x86 box, a root install on fake Jetson
roots with stand-ins for the system commands (user, groups, pycuda's CUDA path, engines,
systemctl, the journal on a failed start), and a real off-Jetson install into a temporary
prefix, the daemon running from the installed files against a test broker, a repeat install
that changes nothing, and --uninstall leaving only the gallery.

The fake roots are text files in tests/fixtures/jetson/ read through FACEEDGE_FAKE_ROOT
(documented at the top of install.sh); no Jetson and no systemd as PID 1 are needed.
"""
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from tests.broker import make_client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL = os.path.join(REPO, "install.sh")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "jetson")


def run_install(args, env_extra=None, timeout=120, script=INSTALL):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("FACEEDGE_") and key not in ("FACEEDGE_TEST_MODELS", "FACEEDGE_DATA"):
            del env[key]
    env.update(env_extra or {})
    proc = subprocess.Popen(["bash", script] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, env=env, cwd=REPO)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def plan(root, *args):
    code, out, err = run_install(["--dry-run"] + list(args), {"FACEEDGE_FAKE_ROOT": os.path.join(FIXTURES, root)})
    assert code == 0, out + err
    keys = {}
    for line in out.splitlines():
        if line.startswith(("pip:", "apt:", "pip_bootstrap:")):
            key, _, value = line.partition(":")
            keys.setdefault(key, value.strip())
        elif "=" in line and not line.startswith(" "):
            key, _, value = line.partition("=")
            keys.setdefault(key, value)
    return keys, out, err


# ------------------------------------------------------------------ static checks

@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_shellcheck():
    proc = subprocess.Popen(["shellcheck", "-x", INSTALL], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and not out.strip(), out


def test_strict_mode_and_documented_overrides():
    with open(INSTALL) as f:
        text = f.read()
    assert "set -Eeuo pipefail" in text
    header = text.split("set -Eeuo pipefail")[0]
    for name in ("FACEEDGE_FAKE_ROOT", "FACEEDGE_ETC_DIR", "FACEEDGE_STATE_DIR", "FACEEDGE_UNIT_DIR",
                 "FACEEDGE_UNPRIVILEGED", "FACEEDGE_PYTHON", "FACEEDGE_MOSQUITTO_DIR"):
        assert name in header, name
    for option in ("--prefix", "--config", "--broker", "--with-mosquitto", "--with-jtop", "--no-start",
                   "--dry-run", "--uninstall", "--purge", "--models-from"):
        assert option in header, option


def test_help_and_bad_option():
    code, out, _ = run_install(["--help"])
    assert code == 0 and "--uninstall" in out and "FACEEDGE_FAKE_ROOT" in out
    code, _, err = run_install(["--bogus"])
    assert code == 2 and "unknown option --bogus" in err


# ------------------------------------------------------------------ the plan on fake roots

MATRIX = {
    "nano-jp46": dict(platform="jetson", l4t="32.7.4", jetpack="4.6", python="3.6", tensorrt="8.2",
                      cuda="10.2", precision="fp16", pins=["numpy==1.19.4", "paho-mqtt==1.6.1", "pycuda==2022.1",
                                                          "onnxruntime==1.10.0"],
                      bootstrap="pip>=19.3,<22"),
    "xavier-jp51": dict(platform="jetson", l4t="35.4.1", jetpack="5.1", python="3.8", tensorrt="8.5",
                        cuda="11.4", precision="int8", pins=["numpy<1.24", "paho-mqtt>=2,<3", "pycuda>=2024.1",
                                                             "onnxruntime<=1.19.2"]),
    "orin-jp62": dict(platform="jetson", l4t="36.4.3", jetpack="6.x", python="3.10", tensorrt="10.3",
                      cuda="12.6", precision="int8", pins=["numpy<2", "paho-mqtt>=2,<3", "onnxruntime<=1.23.2"]),
    "thor-jp7": dict(platform="jetson", l4t="39.1.0", jetpack="7.x", python="3.12", tensorrt="10.16",
                     cuda="13", precision="int8", pins=["numpy", "paho-mqtt>=2,<3", "onnxruntime"]),
}
# systemd < 247 (Ubuntu 18.04: 237, 20.04: 245) ignores LoadCredential=.
CREDENTIALS = {"nano-jp46": "copy", "xavier-jp51": "copy", "orin-jp62": "LoadCredential",
               "thor-jp7": "LoadCredential", "x86-debian12": "LoadCredential"}


@pytest.mark.parametrize("root", sorted(MATRIX))
def test_plan_jetson(root):
    want = MATRIX[root]
    keys, out, _ = plan(root)
    for key in ("platform", "l4t", "jetpack", "python", "tensorrt", "cuda", "precision"):
        assert keys[key] == want[key], (key, keys[key], out)
    pins = keys["pip"].split()
    for pin in want["pins"]:
        assert pin in pins, (pin, pins)
    assert any(p.startswith("pycuda") for p in pins), pins  # built on the board
    assert keys["credentials"] == CREDENTIALS[root]
    assert "bootstrap" not in want or want["bootstrap"] in keys["pip_bootstrap"].split()
    # JetPack's OpenCV (GStreamer) only: no pip OpenCV anywhere in the plan.
    assert keys["opencv"] == "system"
    assert keys["package"] == "faceedge"
    assert "opencv" not in keys["pip"].lower() and "opencv" not in keys["apt"].lower()
    assert "pip install opencv" not in out.replace("never pip install opencv", "")
    assert keys["venv_args"] == "--system-site-packages"
    assert keys["backend"] == "tensorrt"
    assert keys["system_python"] == "/usr/bin/python3"
    assert keys["problems"] == "0", out
    assert "Jetson" in keys["jetson_model"]
    # The human part says what it detected and what it will do.
    assert "will:" in out and "build pycuda with CUDA_ROOT=/usr/local/cuda" in out


@pytest.mark.parametrize("root,apt", [("nano-jp46", "nvidia-opencv"), ("orin-jp62", "nvidia-opencv"),
                                      ("thor-jp7", "python3-opencv")])
def test_plan_missing_opencv_names_the_package(tmp_path, root, apt):
    """JetPack 4.6-6.x ship nvidia-opencv; JetPack 7 ships none, Ubuntu's has GStreamer."""
    fake = tmp_path / root
    shutil.copytree(os.path.join(FIXTURES, root), str(fake))
    probe = (fake / "python3-probe").read_text().splitlines()
    (fake / "python3-probe").write_text("\n".join(l for l in probe if not l.startswith("cv2")) + "\ncv2=\n")
    code, out, err = run_install(["--dry-run"], {"FACEEDGE_FAKE_ROOT": str(fake)})
    assert code == 0, out + err
    assert "problems=1" in out.splitlines()
    assert "OpenCV does not import" in out and "sudo apt-get install {} ".format(apt) in out
    assert "never pip install opencv" in out


def test_dry_run_changes_nothing(tmp_path):
    env = dict(_install_env(tmp_path), FACEEDGE_FAKE_ROOT=os.path.join(FIXTURES, "x86-debian12"))
    code, out, err = run_install(["--dry-run", "--prefix", str(tmp_path / "opt")], env)
    assert code == 0, out + err
    assert os.listdir(str(tmp_path)) == []
    assert not [l for l in out.splitlines() if l.startswith("+ ")], out
    assert "problems=0" in out.splitlines()


def test_plan_orin_nano_is_not_a_nano():
    keys, _, _ = plan("orin-jp62")
    assert "Nano" in keys["jetson_model"] and keys["precision"] == "int8"


def test_plan_xavier_from_dpkg_only():
    assert not os.path.exists(os.path.join(FIXTURES, "xavier-jp51", "etc", "nv_tegra_release"))
    keys, _, _ = plan("xavier-jp51")
    assert keys["l4t"] == "35.4.1"


def test_plan_x86():
    keys, out, _ = plan("x86-debian12")
    assert keys["platform"] == "linux"
    assert keys["arch"] == "x86_64"
    assert keys["python"] == "3.11"
    assert keys["precision"] == "none"
    assert keys["backend"] == "onnxruntime"
    assert keys["opencv"] == "pip"
    assert keys["package"] == "faceedge[opencv]"
    assert "jetpack" not in keys and "tensorrt" not in keys
    assert keys["venv_args"] == ""
    assert "pycuda" not in out
    assert keys["systemd"] == "252" and keys["credentials"] == CREDENTIALS["x86-debian12"]


def test_plan_broken_nano_says_what_to_install(tmp_path):
    keys, out, _ = plan("nano-broken")
    assert keys["problems"] == "3"
    assert "apt-get install python3-libnvinfer" in out
    assert "pip3 uninstall opencv-python" in out and "GStreamer" in out
    assert "cuda-toolkit-10-2" in out
    assert "python3-dev" in keys["apt"].split()
    # A real run stops at the prerequisite check, before changing anything.
    env = {"FACEEDGE_FAKE_ROOT": os.path.join(FIXTURES, "nano-broken"), "FACEEDGE_UNPRIVILEGED": "1",
           "FACEEDGE_ETC_DIR": str(tmp_path / "etc"), "FACEEDGE_STATE_DIR": str(tmp_path / "state"),
           "FACEEDGE_UNIT_DIR": str(tmp_path / "units")}
    code, out, err = run_install(["--prefix", str(tmp_path / "opt")], env)
    assert code != 0
    assert 'error in step "check prerequisites"' in err and "python3-libnvinfer" in err
    assert sorted(os.listdir(str(tmp_path))) == []


def test_plan_options():
    keys, out, _ = plan("nano-jp46", "--broker", "mqtt.lan:8883", "--with-jtop", "--no-start")
    assert keys["broker"] == "mqtt.lan:8883"
    assert keys["jtop"] == "jetson-stats==4.3.2"
    assert "groups video,jtop" in out and "not start the service" in out
    keys, _, _ = plan("orin-jp62", "--with-mosquitto", "--prefix", "/srv/fe")
    assert keys["broker"] == "localhost:1883"
    assert "mosquitto" in keys["apt"].split()
    assert keys["venv"] == "/srv/fe/venv"
    keys, _, _ = plan("x86-debian12", "--broker", "10.0.0.2")
    assert keys["broker"] == "10.0.0.2:1883"
    keys, _, err = plan("x86-debian12", "--with-jtop")
    assert keys["jtop"] == "no" and "only applies to a Jetson" in err


def test_plan_x86_python36_uses_the_wheels_that_exist(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(os.path.join(FIXTURES, "x86-debian12"), str(root))
    (root / "python3-probe").write_text("python=3.6.15\ntensorrt=\ncv2=\n")
    code, out, err = run_install(["--dry-run"], {"FACEEDGE_FAKE_ROOT": str(root)})
    assert code == 0, out + err
    assert "python=3.6" in out.splitlines()
    assert "pip: numpy==1.19.5 onnxruntime==1.10.0 opencv-python-headless==4.6.0.66 paho-mqtt==1.6.1" in out
    assert "pip_bootstrap: pip>=19.3,<22" in out


def test_uninstall_dry_run():
    code, out, err = run_install(["--uninstall", "--dry-run"])
    assert code == 0 and "except /var/lib/faceedge/gallery" in out
    code, out, err = run_install(["--uninstall", "--purge", "--dry-run"])
    assert code == 0 and "also the gallery" in out
    code, out, err = run_install(["--purge"])
    assert code != 0 and "--purge only goes with --uninstall" in err


def test_plan_rejects_bad_broker_port():
    code, _, err = run_install(["--dry-run", "--broker", "host:abc"],
                               {"FACEEDGE_FAKE_ROOT": os.path.join(FIXTURES, "x86-debian12")})
    assert code != 0 and "port must be a number" in err and 'step "detect the platform"' in err


def test_unknown_l4t_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text("# R28 (release), REVISION: 2.1, GCID: 1\n")
    (root / "arch").write_text("aarch64\n")
    code, _, err = run_install(["--dry-run"], {"FACEEDGE_FAKE_ROOT": str(root)})
    assert code != 0 and "unsupported L4T 28.2.1" in err


@pytest.mark.parametrize("revision,tensorrt", [("6.1", "8.0"), ("5.1", None)])
def test_older_jetpack_4(tmp_path, revision, tensorrt):
    """L4T 32.6 is JetPack 4.6 with TensorRT 8.0 (a warning); 32.5 (TensorRT 7.1) is refused."""
    root = tmp_path / "root"
    shutil.copytree(os.path.join(FIXTURES, "nano-jp46"), str(root))
    (root / "etc" / "nv_tegra_release").write_text("# R32 (release), REVISION: {}, GCID: 1\n".format(revision))
    code, out, err = run_install(["--dry-run"], {"FACEEDGE_FAKE_ROOT": str(root)})
    if tensorrt is None:
        assert code != 0 and "TensorRT 7.1" in err and "needs TensorRT >= 8.0" in err
    else:
        assert code == 0, out + err
        lines = out.splitlines()
        assert "jetpack=4.6" in lines and "tensorrt=" + tensorrt in lines and "precision=fp16" in lines
        assert "tested on JetPack 4.6.1+" in err


def test_not_root_without_unprivileged_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root")
    code, _, err = run_install([], {"FACEEDGE_FAKE_ROOT": os.path.join(FIXTURES, "x86-debian12")})
    assert code != 0 and "run as root" in err


def test_failure_names_the_step_and_command(tmp_path):
    """A failing command stops the install with the step's name and the command that failed."""
    fake = tmp_path / "python3"
    fake.write_text('#!/bin/sh\n'
                    'if [ "$1" = "-s" ]; then echo python=3.11.2; exit 0; fi\n'
                    'if [ "$1" = "-c" ]; then exit 0; fi\n'
                    'echo "fake python: cannot make a venv" >&2; exit 3\n')
    fake.chmod(0o755)
    env = _install_env(tmp_path)
    env["FACEEDGE_PYTHON"] = str(fake)
    code, out, err = run_install(["--prefix", str(tmp_path / "opt"), "--config", _config_source(tmp_path)], env)
    assert code == 3
    assert "+ {} -m venv {}".format(fake, tmp_path / "opt" / "venv") in out
    assert 'step "create the venv {}/opt/venv and install faceedge" failed (exit 3'.format(tmp_path) in err
    assert "{} -m venv".format(fake) in err.splitlines()[-1]


# ------------------------------------------------------------------ a root install on a fake Jetson

# One stand-in for every system command install.sh runs as root (and for the system Python and
# the venv's python/faceedge): it logs name, arguments and the environment that matters, and
# keeps just enough state (user, groups) to answer `id`. FACEEDGE_SHIM_STATE/<flag> files make
# the start fail or a pip OpenCV appear.
SHIM = r"""#!/bin/bash
name="$(basename "$0")"
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$*" "$PATH" "${CUDA_ROOT:-}" "${CUDA_INC_DIR:-}" \
  "${OPENBLAS_CORETYPE:-}" >> "$FACEEDGE_SHIM_LOG"
state="$FACEEDGE_SHIM_STATE"
case "$name" in
  id) case "$1" in
        -u) echo 0 ;;
        -nG) [ -f "$state/user" ] && tr '\n' ' ' < "$state/groups" ;;
        *) [ -f "$state/user" ] ;;
      esac ;;
  useradd) touch "$state/user"; echo faceedge > "$state/groups" ;;
  usermod) echo "${@: -2:1}" >> "$state/groups" ;;
  getent) case "$1" in
            group) [ "$2" = video ] ;;
            passwd) [ -f "$state/user" ] && echo "faceedge:x:998:998:faceedge face recognition daemon:/:/bin/false" ;;
          esac ;;
  runuser) while [ "$1" != -- ]; do shift; done; shift; exec "$@" ;;
  systemctl) case "$*" in
               "start faceedge.service"|"restart faceedge.service") [ ! -f "$state/fail-start" ] ;;
             esac ;;
  journalctl) echo "faceedge[4242]: camera door: /dev/video0: No such device" ;;
  syspython3) if [ "$1 $2" = "-m venv" ]; then
                dir="${@: -1}"; mkdir -p "$dir/bin"; cp "$0" "$dir/bin/python"; cp "$0" "$dir/bin/faceedge"
              fi ;;
  python) case "$*" in
            --version) echo "Python 3.6.9" ;;
            "-m pip list --local") [ ! -f "$state/pip-opencv" ] || echo "opencv-python 4.10.0.84" ;;
          esac ;;
esac
"""
SHIM_NAMES = ("id", "useradd", "usermod", "userdel", "groupadd", "getent", "chown", "chgrp", "runuser",
              "systemctl", "journalctl", "apt-get", "syspython3")


class Shims(object):
    """A fake Jetson root with systemd "running", and the stand-ins first in PATH."""

    def __init__(self, tmp_path, root):
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        shutil.copytree(os.path.join(FIXTURES, root), str(self.root))
        (self.root / "run" / "systemd" / "system").mkdir(parents=True)
        self.bin = tmp_path / "shims"
        self.state = tmp_path / "shim-state"
        self.log = tmp_path / "shim.log"
        for d in (self.bin, self.state, tmp_path / "units"):
            d.mkdir()
        for name in SHIM_NAMES:
            (self.bin / name).write_text(SHIM)
            (self.bin / name).chmod(0o755)
        self.opt, self.etc, self.st, self.units = (tmp_path / "opt", tmp_path / "etc", tmp_path / "state",
                                                   tmp_path / "units")

    def run(self, *args, **env_extra):
        if self.log.exists():
            self.log.unlink()
        env = {"FACEEDGE_FAKE_ROOT": str(self.root), "FACEEDGE_ETC_DIR": str(self.etc),
               "FACEEDGE_STATE_DIR": str(self.st), "FACEEDGE_UNIT_DIR": str(self.units),
               "FACEEDGE_MOSQUITTO_DIR": str(self.tmp / "mosquitto"),
               "FACEEDGE_PYTHON": str(self.bin / "syspython3"), "FACEEDGE_SHIM_LOG": str(self.log),
               "FACEEDGE_SHIM_STATE": str(self.state), "PATH": str(self.bin) + os.pathsep + os.environ["PATH"]}
        env.update(env_extra)
        code, out, err = run_install(["--prefix", str(self.opt)] + list(args), env)
        self.calls = []  # (name, args, PATH, CUDA_ROOT, CUDA_INC_DIR, OPENBLAS_CORETYPE)
        if self.log.exists():
            self.calls = [tuple(l.split("\t")) for l in self.log.read_text().splitlines()]
        return code, out, err

    def called(self, name):
        return [c[1] for c in self.calls if c[0] == name]

    def call(self, name, args_start):
        found = [c for c in self.calls if c[0] == name and c[1].startswith(args_start)]
        assert len(found) == 1, (name, args_start, self.calls)
        return found[0]


def test_root_install_on_a_jetson_nano(tmp_path):
    sh = Shims(tmp_path, "nano-jp46")
    config = _config_source(tmp_path, video="/dev/video0")
    code, out, err = sh.run("--with-jtop", "--config", config)
    assert code == 0, out + err
    assert "start=yes" in out.splitlines() and "cameras=1" in out.splitlines()
    assert "no camera is configured" not in out
    assert out.index("platform=jetson") < out.index("\n+ ")  # the plan comes first
    assert sh.called("apt-get") == []
    venv = str(sh.opt / "venv")
    # The user, in video and jtop.
    assert sh.called("useradd")[0].startswith("--system --home-dir {} ".format(sh.st))
    assert sh.called("useradd")[0].endswith(" faceedge")
    assert sh.called("groupadd") == ["--system jtop"]
    assert sh.called("usermod") == ["-a -G video faceedge", "-a -G jtop faceedge"]
    # A venv that sees JetPack's TensorRT and OpenCV; numpy pinned, then pycuda built against CUDA.
    assert sh.called("syspython3") == ["-m venv --system-site-packages " + venv]
    pip = [c for c in sh.calls if c[0] == "python" and c[1].startswith("-m pip install")]
    assert "pip>=19.3,<22" in pip[0][1]
    constraints = venv + "/faceedge-constraints.txt"
    assert pip[1][1] == "-m pip install -q -c {} numpy".format(constraints)
    assert pip[2][1] == "-m pip install -q --no-build-isolation -c {} pycuda".format(constraints)
    assert pip[2][2].startswith("/usr/local/cuda/bin:")
    assert pip[2][3:5] == ("/usr/local/cuda", "/usr/local/cuda/include")
    assert pip[3][1] == "-m pip install -q jetson-stats==4.3.2"
    assert pip[4][1] == "-m pip install -q -c {} {}".format(constraints, REPO)  # no [opencv] extra
    assert not [c for c in pip if "opencv" in c[1].lower()]
    lines = (sh.opt / "venv" / "faceedge-constraints.txt").read_text().split()
    assert "numpy==1.19.4" in lines and "pycuda==2022.1" in lines and "paho-mqtt==1.6.1" in lines
    # Engines: from the daemon's config (nothing overriding it), as the service user, with CUDA
    # in PATH, the numpy workaround and the data dir systemd gives the units.
    build = sh.call("faceedge", "build-engines")
    assert build[1] == "build-engines --no-progress --config {}/config.toml".format(sh.etc)
    assert build[2].startswith("/usr/local/cuda/bin:") and build[5] == "ARMV8"
    assert sh.called("runuser")[0].startswith("-u faceedge -- env HOME={} STATE_DIRECTORY={} ".format(sh.st, sh.st))
    _assert_builds_from_the_config(build[1], sh.etc / "config.toml")
    # Ownership and modes.
    chowned = " ".join(sh.called("chown"))
    for sub in ("gallery", "engines", "models", "calibration", "queue"):
        assert "{}/{}".format(sh.st, sub) in chowned, sub
    assert sh.called("chgrp") == ["faceedge {}/config.toml".format(sh.etc)]
    _assert_state_modes(sh.st)
    # Units: enabled, then (re)started; systemd 237 gets the credential drop-in.
    systemctl = sh.called("systemctl")
    assert systemctl == ["daemon-reload", "enable faceedge.service faceedge-backup.timer",
                         "start faceedge-backup.timer", "restart faceedge.service", "is-active faceedge.service"]
    dropin = (sh.units / "faceedge.service.d" / "credentials-compat.conf").read_text()
    assert "/usr/bin/install -m 0400 -o faceedge -g faceedge {}/mqtt_password ".format(sh.etc) in dropin
    assert "ConditionPathExists" not in (sh.units / "faceedge-build.service").read_text()
    env = (sh.etc / "install.env").read_text()
    assert "OPENBLAS_CORETYPE=ARMV8" in env and 'FACEEDGE_BUILD_ARGS=""' in env
    assert _build_unit_command(tmp_path) == build[1].split()   # at boot: the same build as now
    _verify_units(sh.units)

    # Again: nothing changes, the service is only started.
    before = _snapshot(str(tmp_path), skip=(str(sh.log),))
    time.sleep(1.1)
    code, out, err = sh.run("--with-jtop", "--config", config)
    assert code == 0, out + err
    assert _snapshot(str(tmp_path), skip=(str(sh.log),)) == before
    assert sh.called("useradd") == [] and sh.called("usermod") == []
    assert "start faceedge.service" in sh.called("systemctl")

    code, out, err = sh.run("--uninstall")
    assert code == 0, out + err
    assert "disable --now faceedge.service" in sh.called("systemctl")
    assert os.listdir(str(sh.units)) == []
    assert sh.called("userdel") == [] and "kept user faceedge" in out
    code, out, err = sh.run("--uninstall", "--purge")
    assert code == 0, out + err
    assert sh.called("userdel") == ["faceedge"]


def test_root_install_on_a_xavier_int8_and_a_failed_start(tmp_path):
    """INT8 once a calibration set exists; a start that fails prints the journal and names the step."""
    sh = Shims(tmp_path, "xavier-jp51")
    (sh.st / "calibration").mkdir(parents=True)
    (sh.st / "calibration" / "manifest.json").write_text("{}")
    (sh.state / "fail-start").write_text("")
    code, out, err = sh.run("--config", _config_source(tmp_path, video="/dev/video0"))
    assert code == 1
    build = sh.call("faceedge", "build-engines")[1]
    assert build == "build-engines --no-progress --config {}/config.toml --calibration {}/calibration".format(
        sh.etc, sh.st)
    args = _assert_builds_from_the_config(build, sh.etc / "config.toml")
    assert args.calibration == "{}/calibration".format(sh.st)
    assert _build_unit_command(tmp_path) == build.split()
    # L4T came from dpkg (no /etc/nv_tegra_release): the build unit must not be skipped.
    assert "ConditionPathExists" not in (sh.units / "faceedge-build.service").read_text()
    assert "+ systemctl restart faceedge.service" in out
    assert "/dev/video0: No such device" in err
    assert 'error in step "start faceedge.service and wait until it is ready"' in err


def test_root_install_keeps_the_calibration_set_the_config_names(tmp_path):
    """engines.calibration_dir in the config is the set the daemon checks engines against:
    install.sh then passes no --calibration of its own (it would override the config's)."""
    sh = Shims(tmp_path, "xavier-jp51")
    (sh.st / "calibration").mkdir(parents=True)
    (sh.st / "calibration" / "manifest.json").write_text("{}")
    source = _config_source(tmp_path, video="/dev/video0")
    with open(source) as f:
        text = f.read()
    import re
    text, n = re.subn(r'(?m)^calibration_dir = ""', 'calibration_dir = "/data/door-set"', text)
    if n == 0:  # not spelled out in this config: add it to [engines]
        text, n = re.subn(r'(?m)^\[engines\]\n', '[engines]\ncalibration_dir = "/data/door-set"\n', text)
    assert n == 1, text
    with open(source, "w") as f:
        f.write(text)
    code, out, err = sh.run("--config", source)
    assert code == 0, out + err
    build = sh.call("faceedge", "build-engines")[1]
    assert build == "build-engines --no-progress --config {}/config.toml".format(sh.etc)
    assert _build_unit_command(tmp_path) == build.split()


def test_root_install_without_a_camera_starts_and_says_how_to_add_one(tmp_path):
    """The example config has no camera: the daemon is ready at once (gallery commands over MQTT),
    so it is started, and the plan and the end of the install say how to add a camera."""
    sh = Shims(tmp_path, "thor-jp7")
    keys, out, err = plan("thor-jp7")
    assert keys["start"] == "yes" and keys["cameras"] == "0"
    assert "no camera is configured yet" in out and "once a camera opens" not in out
    code, out, err = sh.run()
    assert code == 0, out + err
    lines = out.splitlines()
    assert "start=yes" in lines and "cameras=0" in lines
    assert sh.called("systemctl") == ["daemon-reload", "enable faceedge.service faceedge-backup.timer",
                                      "start faceedge-backup.timer", "restart faceedge.service",
                                      "is-active faceedge.service"]
    tail = out[out.index("faceedge is running"):]
    assert "no camera is configured yet" in tail and "enroll people" in tail
    assert "edit {}/config.toml, add a [[cameras]] table".format(sh.etc) in tail
    assert "systemctl restart faceedge.service" in tail


def test_root_install_refuses_a_pip_opencv_on_a_jetson(tmp_path):
    sh = Shims(tmp_path, "orin-jp62")
    (sh.state / "pip-opencv").write_text("")
    code, out, err = sh.run()
    assert code == 1 and "a pip OpenCV got into" in err
    assert not (sh.units / "faceedge.service").exists()
    assert not (sh.units / "faceedge.service.d").exists()  # systemd 249 has LoadCredential=


def test_unprivileged_install_on_a_jetson(tmp_path):
    """No user, ownership or systemctl; the engines are still built, with the numpy workaround."""
    sh = Shims(tmp_path, "nano-jp46")
    code, out, err = sh.run(FACEEDGE_UNPRIVILEGED="1")
    assert code == 0, out + err
    for name in ("useradd", "usermod", "chown", "chgrp", "runuser", "systemctl", "apt-get"):
        assert sh.called(name) == [], name
    build = sh.call("faceedge", "build-engines")
    assert build[1] == "build-engines --no-progress --config {}/config.toml".format(sh.etc) and build[5] == "ARMV8"
    assert (sh.units / "faceedge.service").is_file()


def test_root_install_with_mosquitto(tmp_path):
    sh = Shims(tmp_path, "orin-jp62")
    code, out, err = sh.run("--with-mosquitto", "--no-start")
    assert code == 0, out + err
    # The Orin root lacks python3-venv too (as a fresh JetPack 6 does).
    assert sh.called("apt-get") == ["update -qq", "install -y -qq python3-venv mosquitto"]
    conf = tmp_path / "mosquitto" / "conf.d" / "faceedge.conf"
    text = conf.read_text()
    assert "listener 1883 127.0.0.1\n" in text and "allow_anonymous false\n" in text
    assert "password_file " in text and "acl_file " in text
    config = (sh.etc / "config.toml").read_text()
    assert 'host = "localhost"' in config and "port = 1883" in config and 'username = "faceedge"' in config
    device_pw = (sh.etc / "mqtt_password").read_text().strip()
    admin_pw = (sh.etc / "mqtt_admin_password").read_text().strip()
    assert len(device_pw) >= 20 and len(admin_pw) >= 20 and device_pw != admin_pw
    assert oct((sh.etc / "mqtt_admin_password").stat().st_mode & 0o777) == "0o600"
    assert device_pw not in out + err and admin_pw not in out + err      # never echoed
    # Again: the passwords stay (the daemon and the admin keep working).
    code, out, err = sh.run("--with-mosquitto", "--no-start")
    assert code == 0, out + err
    assert (sh.etc / "mqtt_password").read_text().strip() == device_pw
    systemctl = sh.called("systemctl")
    assert systemctl[:2] == ["enable mosquitto.service", "restart mosquitto.service"]
    assert not [c for c in systemctl if c.endswith(" faceedge.service") and "enable" not in c]  # --no-start
    code, out, err = sh.run("--uninstall")
    assert code == 0, out + err
    assert not conf.exists() and "try-restart mosquitto.service" in sh.called("systemctl")


def _connect(port, user=None, password=None):
    """(client, rc of the CONNACK) for a real connection as user (None: anonymous)."""
    import threading
    client = make_client("acl-test-{}-{}".format(user, os.getpid()))
    if user:
        client.username_pw_set(user, password)
    result, done = [], threading.Event()
    messages = []

    def on_connect(c, userdata, flags, rc, *rest):
        result.append(int(getattr(rc, "value", rc)))
        done.set()
    client.on_connect = on_connect
    client.on_message = lambda c, u, m: messages.append((m.topic, m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert done.wait(20), "no CONNACK"
    client.messages = messages
    return client, result[0]


def test_the_installed_broker_is_closed_and_its_acl_holds(tmp_path):
    """The files install.sh --with-mosquitto writes, loaded by a real mosquitto: no anonymous
    client; the device writes only its own root; only the admin can send it commands."""
    from tests.broker import Broker
    from tests.faults import wait_until
    sh = Shims(tmp_path, "orin-jp62")
    code, out, err = sh.run("--with-mosquitto", "--no-start")
    assert code == 0, out + err
    mdir = tmp_path / "mosquitto"
    snippet = (mdir / "conf.d" / "faceedge.conf").read_text()
    kept = [l for l in snippet.splitlines() if l.startswith(("password_file", "acl_file"))]
    acl = (mdir / "faceedge.acl").read_text()
    root = acl.split("topic readwrite ")[1].split("/#")[0]
    device_pw = (sh.etc / "mqtt_password").read_text().strip()
    admin_pw = (sh.etc / "mqtt_admin_password").read_text().strip()
    with Broker(tmp_path / "broker", allow_anonymous=False, extra_config="\n".join(kept)) as broker:
        anonymous, rc = _connect(broker.port)
        anonymous.loop_stop()
        assert rc != 0, "an anonymous client was let in"
        admin, rc = _connect(broker.port, "faceedge-admin", admin_pw)
        device, rc2 = _connect(broker.port, "faceedge", device_pw)
        assert rc == 0 and rc2 == 0
        try:
            admin.subscribe("#", qos=1)
            device.subscribe(root + "/gallery/set", qos=1)
            device.subscribe("faceedge/other-door/gallery/set", qos=1)
            time.sleep(0.5)
            device.publish("faceedge/other-door/gallery/set", b"forged", qos=1).wait_for_publish()
            device.publish(root + "/events", b"event", qos=1).wait_for_publish()
            admin.publish(root + "/gallery/set", b"command", qos=1).wait_for_publish()
            admin.publish("faceedge/other-door/gallery/set", b"not for you", qos=1).wait_for_publish()
            wait_until(lambda: (root + "/events", b"event") in admin.messages, 20, "the device's event")
            wait_until(lambda: (root + "/gallery/set", b"command") in device.messages, 20, "the admin's command")
            time.sleep(0.5)
            assert ("faceedge/other-door/gallery/set", b"forged") not in admin.messages
            assert not [m for m in device.messages if m[0].startswith("faceedge/other-door")]
        finally:
            for client in (admin, device):
                client.loop_stop()
                client.disconnect()


def _assert_builds_from_the_config(argv, config):
    """`faceedge build-engines` parses the logged arguments as: the daemon's config, with no
    option overriding its models, [engines] or det_size."""
    from edge.cli import build_parser
    args = build_parser().parse_args(argv.split())
    assert args.config == str(config)
    for name in ("profile", "model_dir", "engine_dir", "precision", "max_batch", "opt_batch", "detector_size"):
        assert getattr(args, name) is None, name
    assert not args.detector_fixed
    return args


def _build_unit_command(tmp_path):
    """faceedge-build.service's ExecStart as systemd runs it: $FACEEDGE_BUILD_ARGS split at whitespace."""
    unit = _installed_unit(tmp_path, "faceedge-build.service")
    argv = []
    for word in unit["ExecStart"][0]:
        argv += unit["env"].get("FACEEDGE_BUILD_ARGS", "").split() if word == "$FACEEDGE_BUILD_ARGS" else [word]
    assert argv[0] == str(tmp_path / "opt" / "venv" / "bin" / "faceedge")
    return argv[1:]


def _assert_state_modes(state):
    modes = {sub: oct(os.stat(os.path.join(str(state), sub)).st_mode & 0o777)
             for sub in ("", "gallery", "engines", "models", "calibration", "queue")}
    assert modes == {"": "0o750", "gallery": "0o700", "engines": "0o750", "models": "0o750",
                     "calibration": "0o750", "queue": "0o700"}


def _verify_units(unit_dir):
    """`systemd-analyze verify` on the installed units (with drop-ins): any output fails."""
    if not shutil.which("systemd-analyze"):
        return
    proc = subprocess.Popen(["systemd-analyze", "verify"] + sorted(n for n in os.listdir(str(unit_dir))
                                                                    if not n.endswith(".d")),
                            cwd=str(unit_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0 and not out.strip(), out


# ------------------------------------------------------------------ a real off-Jetson install

def _daemon_available():
    """`faceedge run` exists (whichever module registers it) and so does the example config."""
    if not os.path.isfile(os.path.join(REPO, "examples", "faceedge.toml")):
        return False
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--help"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc.wait(60) == 0


def _broker():
    from tests.broker import Broker
    return Broker()


# A config for the real run: the example with the sample video as the (first) camera.
MINIMAL_CONFIG = """\
[device]
id = "install-test"

[models]
profile = "default"
dir = "/var/lib/faceedge/models"

[gallery]
path = "/var/lib/faceedge/gallery/gallery.db"

[mqtt]
host = "localhost"
port = 1883

[engines]
dir = "/var/lib/faceedge/engines"
"""


def _config_source(tmp_path, video=None):
    import re
    example = os.path.join(REPO, "examples", "faceedge.toml")
    if os.path.isfile(example):
        with open(example) as f:
            text = f.read()
    else:
        text = MINIMAL_CONFIG
    if video is not None:
        # The example ships with its cameras commented out (an appliance without a camera must
        # not crash-loop): add one for the sample video.
        assert not re.search(r'(?m)^\s*\[\[cameras\]\]', text), "the example already has a camera"
        text += '\n[[cameras]]\nname = "door"\nsource = "{}"\n'.format(video)
    path = tmp_path / "source.toml"
    path.write_text(text)
    return str(path)


def _install_env(tmp_path):
    return {"FACEEDGE_UNPRIVILEGED": "1", "FACEEDGE_ETC_DIR": str(tmp_path / "etc"),
            "FACEEDGE_STATE_DIR": str(tmp_path / "state"), "FACEEDGE_UNIT_DIR": str(tmp_path / "units"),
            "FACEEDGE_PYTHON": sys.executable}


def _snapshot(root, skip=()):
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if any(path.startswith(s) for s in skip):
                continue
            st = os.lstat(path)
            found[path] = (st.st_mode, st.st_size, st.st_mtime)
    return found


def _source_copy(tmp_path):
    """A copy of the checkout to install from: others editing it meanwhile must not make the
    repeat install see a changed source (it would rightly reinstall)."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".venv", ".git")
    for name in ("edge", "engine_builder", "calibration", "examples", "systemd"):
        shutil.copytree(os.path.join(REPO, name), str(src / name), ignore=ignore)
    for name in ("install.sh", "setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(os.path.join(REPO, name), str(src / name))
    return str(src / "install.sh")


def _real_install(tmp_path, model_dir, broker_port, video=None):
    (tmp_path / "units").mkdir()
    args = ["--prefix", str(tmp_path / "opt"), "--config", _config_source(tmp_path, video),
            "--broker", "127.0.0.1:{}".format(broker_port), "--models-from", model_dir, "--no-start"]
    script = _source_copy(tmp_path)
    code, out, err = run_install(args, _install_env(tmp_path), timeout=1200, script=script)
    assert code == 0, out + err
    return args, out, script


def _uninstall_leaves_only_gallery(tmp_path, kept=(), people=None):
    """--uninstall keeps STATE/gallery (with `kept`, paths below it, and `people` in its
    gallery.db), --purge then removes it."""
    code, out, err = run_install(["--prefix", str(tmp_path / "opt"), "--uninstall"], _install_env(tmp_path))
    assert code == 0, out + err
    assert not (tmp_path / "opt").exists()
    assert not (tmp_path / "etc").exists()
    assert os.listdir(str(tmp_path / "units")) == []
    assert os.listdir(str(tmp_path / "state")) == ["gallery"]
    assert "kept the gallery" in out
    for path in kept:
        assert (tmp_path / "state" / "gallery" / path).exists(), path
    if people is not None:
        from edge.gallery import Gallery
        gallery = Gallery(str(tmp_path / "state" / "gallery" / "gallery.db"))
        assert sorted(p.name for p in gallery.list_people()) == people
        gallery.close()
    code, out, err = run_install(["--prefix", str(tmp_path / "opt"), "--uninstall", "--purge"],
                                 _install_env(tmp_path))
    assert code == 0, out + err
    assert not (tmp_path / "state").exists()


def test_real_install_repeat_and_uninstall(tmp_path, model_dir):
    """Off-Jetson install into a temporary prefix (unprivileged), again (no change), then removed."""
    args, out, script = _real_install(tmp_path, model_dir, 1883)
    opt, etc, state = tmp_path / "opt", tmp_path / "etc", tmp_path / "state"
    assert "platform=linux" in out and "opencv=pip" in out
    assert out.index("problems=0") < out.index("\n+ ")  # the plan comes first
    assert os.access(str(opt / "venv" / "bin" / "faceedge"), os.X_OK)
    _assert_state_modes(state)
    assert oct((etc / "config.toml").stat().st_mode & 0o777) == "0o640"
    assert oct((etc / "mqtt_password").stat().st_mode & 0o777) == "0o600"
    config = (etc / "config.toml").read_text()
    assert str(state) in config and "/var/lib/faceedge" not in config
    assert 'host = "127.0.0.1"' in config and "port = 1883" in config
    for name in ("retinaface_mnet025.onnx", "sface_2021dec_fp32.onnx"):
        assert (state / "models" / name).is_file()
    installed = (tmp_path / "units" / "faceedge.service").read_text()
    assert "ExecStart={}/venv/bin/faceedge run --config {}/config.toml".format(opt, etc) in installed
    # The installed package is a copy: the venv runs without the checkout.
    proc = subprocess.Popen([str(opt / "venv" / "bin" / "python"), "-c", "import edge; print(edge.__file__)"],
                            stdout=subprocess.PIPE, universal_newlines=True, cwd=str(tmp_path))
    assert str(opt) in proc.communicate()[0]
    assert not (tmp_path / "units" / "faceedge.service.d").exists()  # systemd here has LoadCredential=
    _verify_units(tmp_path / "units")

    # Running it again changes nothing (the existing config is kept, even with another broker).
    src = os.path.dirname(script)
    before = _snapshot(str(tmp_path), skip=(src,))
    time.sleep(1.1)
    args[args.index("--broker") + 1] = "127.0.0.1:9999"
    code, out, err = run_install(args, _install_env(tmp_path), timeout=600, script=script)
    assert code == 0, out + err
    assert "venv is up to date" in out and "keeping the existing" in out
    assert _snapshot(str(tmp_path), skip=(src,)) == before

    (state / "gallery" / "gallery.db").write_text("people")
    _uninstall_leaves_only_gallery(tmp_path)


def _make_video(path, photo, seconds=4, fps=10):
    cv2 = pytest.importorskip("cv2")
    image = cv2.imread(photo)
    assert image is not None, photo
    h, w = image.shape[:2]
    scale = 640.0 / max(h, w)
    image = cv2.resize(image, (int(w * scale) // 2 * 2, int(h * scale) // 2 * 2))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (image.shape[1], image.shape[0]))
    for _ in range(seconds * fps):
        writer.write(image)
    writer.release()
    assert os.path.getsize(path) > 0


@pytest.mark.skipif(not _daemon_available(), reason="`faceedge run` or examples/faceedge.toml "
                                                    "is not written yet")
def test_real_install_runs_daemon(tmp_path, model_dir, facedata):
    """The installed daemon, started as its unit would, publishes to a test broker."""
    import signal
    video = str(tmp_path / "door.avi")
    _make_video(video, os.path.join(facedata, "known", "obama.jpg"))
    with _broker() as broker:
        _real_install(tmp_path, model_dir, broker.port, video=video)
        opt, etc, state = tmp_path / "opt", tmp_path / "etc", tmp_path / "state"

        messages = []
        client = make_client("install-test-watcher")
        client.on_message = lambda c, u, msg: messages.append((msg.topic, msg.payload.decode("utf-8", "replace")))
        client.connect("127.0.0.1", broker.port)
        client.subscribe("#", qos=1)
        client.loop_start()

        # What systemd gives the unit: a notify socket and the credentials directory.
        notify_path = str(tmp_path / "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(0.2)
        creds = tmp_path / "credentials"
        creds.mkdir()
        shutil.copy(str(etc / "mqtt_password"), str(creds / "mqtt_password"))
        unit = _installed_unit(tmp_path, "faceedge.service")
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, CREDENTIALS_DIRECTORY=str(creds), STATE_DIRECTORY=str(state),
                   HOME=str(state), PYTHONUNBUFFERED="1", **unit["env"])
        log_path = tmp_path / "daemon.log"
        with open(str(log_path), "w") as log:
            daemon = subprocess.Popen(unit["ExecStart"][0], cwd=str(state), env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        notes = []
        try:
            deadline = time.time() + 120
            online = False
            while time.time() < deadline and daemon.poll() is None:
                try:
                    notes.append(notify.recv(4096).decode())
                except socket.timeout:
                    pass
                online = any(t.endswith("/available") and p == "online" for t, p in messages)
                if online and any("READY=1" in n for n in notes):
                    break
            assert online, "no retained available=online; daemon log:\n" + log_path.read_text()
            assert any("READY=1" in n for n in notes), (notes, log_path.read_text())
            # Give the pipeline a few seconds on the video: events, if any, are JSON.
            end = time.time() + 15
            while time.time() < end and daemon.poll() is None:
                if any("/events" in t or "/event" in t for t, _ in messages):
                    break
                time.sleep(0.5)
            # People enrolled over MQTT, as a user would, into the default gallery (path = "").
            _enroll_over_mqtt(client, messages, facedata, daemon, log_path)
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            client.loop_stop()
            client.disconnect()
            notify.close()
        assert daemon.returncode == 0, log_path.read_text()
    backup = _run_backup(tmp_path)
    with tarfile.open(str(state / "gallery" / backup)) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read().decode("utf-8"))
    assert sorted(set(s["person"] for s in manifest["samples"])) == ["biden", "obama"], manifest["samples"]
    _uninstall_leaves_only_gallery(tmp_path, kept=("gallery.db", backup), people=["biden", "obama"])


def _enroll_over_mqtt(client, messages, facedata, daemon, log_path):
    import base64
    root = [t for t, p in messages if t.endswith("/available") and p == "online"][0][:-len("/available")]
    for name, photo in (("obama", "obama.jpg"), ("biden", "biden.jpg")):
        with open(os.path.join(facedata, "known", photo), "rb") as f:
            image = base64.b64encode(f.read()).decode("ascii")
        client.publish(root + "/gallery/set", json.dumps(
            {"request_id": "enroll-" + name, "action": "enroll", "name": name, "images": [image]}), qos=1)
    deadline = time.time() + 120
    answers = []
    while time.time() < deadline and daemon.poll() is None and len(answers) < 2:
        answers = [json.loads(p) for t, p in list(messages) if t.endswith("/gallery/response")]
        time.sleep(0.2)
    assert len(answers) == 2 and all(a["ok"] for a in answers), (answers, log_path.read_text())


def _installed_unit(tmp_path, name):
    """An installed unit's commands (argv lists, %% unescaped) and its EnvironmentFile= variables,
    with /var/lib/faceedge (StateDirectory=, not rewritten by install.sh) pointing at the test's."""
    state = str(tmp_path / "state")
    unit = {"env": {}}
    with open(str(tmp_path / "units" / name)) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if not sep or key.startswith("#"):
                continue
            value = value.replace("/var/lib/faceedge", state)
            if key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
                unit.setdefault(key, []).append([a.replace("%%", "%") for a in shlex.split(value)])
            elif key == "EnvironmentFile":
                with open(value.lstrip("-")) as env_file:
                    for env_line in env_file:
                        var, sep, val = env_line.strip().partition("=")
                        if sep and not var.startswith("#"):
                            unit["env"][var] = " ".join(shlex.split(val))
    return unit


def _run_backup(tmp_path):
    """faceedge-backup.service's commands, as installed: an archive of the gallery, 7 kept."""
    backups = tmp_path / "state" / "gallery" / "backups"
    backups.mkdir()
    for day in range(1, 10):  # older exports, oldest first
        old = backups / "gallery-202001{:02d}.tar.gz".format(day)
        old.write_text("old")
        os.utime(str(old), (1577836800 + day * 86400,) * 2)
    unit = _installed_unit(tmp_path, "faceedge-backup.service")
    env = dict(os.environ, **unit["env"])
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost"):
        for argv in unit[key]:
            proc = subprocess.Popen(argv, env=env, cwd=str(tmp_path / "state"), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, universal_newlines=True)
            out = proc.communicate(timeout=300)[0]
            assert proc.returncode == 0, (argv, out)
    import tarfile
    names = sorted(os.listdir(str(backups)))
    assert len(names) == 7 and "gallery-20200104.tar.gz" in names and "gallery-20200103.tar.gz" not in names
    with tarfile.open(str(backups / names[-1])) as archive:
        assert "manifest.json" in archive.getnames()
    return os.path.join("backups", names[-1])


def test_uninstall_keeps_a_gallery_file_named_in_the_config(tmp_path):
    """A gallery at STATE/faces.db (with its WAL) survives --uninstall, whatever its name."""
    env = _install_env(tmp_path)
    opt, etc, state, units = tmp_path / "opt", tmp_path / "etc", tmp_path / "state", tmp_path / "units"
    for d in (opt / "venv", opt / "share", etc, state / "engines", state / "models", units):
        d.mkdir(parents=True)
    (opt / "install-manifest").write_text("etc_dir={}\nstate_dir={}\nunit_dir={}\ncreated_config=1\n".format(
        etc, state, units))
    (etc / "config.toml").write_text('[gallery]\npath = "{}/faces.db"  # the gallery\n'.format(state))
    (etc / "install.env").write_text("")
    for name in ("faces.db", "faces.db-wal", "faces.db-shm"):
        (state / name).write_text("x")
    (state / "engines" / "a.engine").write_text("x")
    (units / "faceedge.service").write_text("[Service]\n")
    code, out, err = run_install(["--prefix", str(opt), "--uninstall"], env)
    assert code == 0, out + err
    assert sorted(os.listdir(str(state))) == ["faces.db", "faces.db-shm", "faces.db-wal"]
    assert not opt.exists() and not etc.exists() and os.listdir(str(units)) == []
