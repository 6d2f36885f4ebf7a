#!/usr/bin/env bash
# install.sh: from a fresh Jetson (JetPack 4.6 / 5.1 / 6.x / 7.x) or a plain x86_64/arm64
# Linux box to a running faceedge service supervised by systemd.
#
#   sudo ./install.sh [options]            install (again: changes nothing if nothing changed)
#   ./install.sh --dry-run [options]       print the plan (what was detected, what would be done)
#   sudo ./install.sh --uninstall [--purge]
#
# Options:
#   --prefix DIR         code and venv (default /opt/faceedge: DIR/venv, DIR/share)
#   --config FILE        install FILE as /etc/faceedge/config.toml instead of the example
#                        (an existing config.toml is never overwritten)
#   --broker HOST[:PORT] MQTT broker written into a newly created config (default localhost:1883)
#   --with-mosquitto     install and enable a local mosquitto broker (localhost:1883)
#   --with-jtop          Jetson: install jetson-stats (AGPL-3.0) and add the user to group jtop
#   --models-from DIR    copy already verified models from DIR instead of downloading them
#   --no-start           install and enable the units, but do not start the service
#   --dry-run            print the plan and exit
#   --uninstall          stop and remove the units, venv, config and state, keeping the gallery
#   --purge              with --uninstall: also remove the gallery and the faceedge user
#   -h, --help
#
# Every command that changes the system is logged as "+ command"; a failure names its step.
#
# Environment overrides, for tests only (a normal install uses none of them):
#   FACEEDGE_FAKE_ROOT=DIR      read the platform from DIR instead of this machine:
#                                 DIR/etc/nv_tegra_release, DIR/proc/device-tree/model (either may be absent)
#                                 DIR/dpkg/PACKAGE   what `dpkg-query -W -f='${Version}' PACKAGE` prints
#                                                    (absent: the package is not installed)
#                                 DIR/arch           what `uname -m` prints
#                                 DIR/python3-probe  the system Python's answers, lines python=3.6.9,
#                                                    tensorrt=8.2.1.8, cv2=4.1.1, cv2_gstreamer=YES,
#                                                    cv2_path=... (empty value: does not import)
#                                 DIR/usr/local/cuda/bin/nvcc   present when CUDA's compiler is
#                                 DIR/systemd        the systemd version (absent: unknown, taken as new)
#                                 DIR/run/systemd/system   present when systemd runs (systemctl and
#                                                    journalctl are then the ones in PATH)
#   FACEEDGE_ETC_DIR=DIR        instead of /etc/faceedge
#   FACEEDGE_STATE_DIR=DIR      instead of /var/lib/faceedge
#   FACEEDGE_UNIT_DIR=DIR       instead of /etc/systemd/system
#   FACEEDGE_MOSQUITTO_DIR=DIR  instead of /etc/mosquitto (--with-mosquitto writes DIR/conf.d/faceedge.conf)
#   FACEEDGE_UNPRIVILEGED=1     allow running as a normal user: no apt-get, useradd, chown or
#                               systemctl (units are written to FACEEDGE_UNIT_DIR but not enabled)
#   FACEEDGE_PYTHON=PATH        the Python the venv is made from (default: python3 in PATH;
#                               /usr/bin/python3 on a Jetson)
#   FACEEDGE_VENV_SYSTEM_SITE=1 make the venv with --system-site-packages off-Jetson too
set -Eeuo pipefail

umask 022  # the venv and config must be readable by the service user
PROG="install.sh"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PREFIX="/opt/faceedge"
CONFIG_SRC=""
BROKER=""
WITH_MOSQUITTO=0
WITH_JTOP=0
MODELS_FROM=""
NO_START=0
DRY_RUN=0
UNINSTALL=0
PURGE=0

FAKE_ROOT="${FACEEDGE_FAKE_ROOT:-}"
ETC_DIR="${FACEEDGE_ETC_DIR:-/etc/faceedge}"
STATE_DIR="${FACEEDGE_STATE_DIR:-/var/lib/faceedge}"
UNIT_DIR="${FACEEDGE_UNIT_DIR:-/etc/systemd/system}"
MOSQUITTO_DIR="${FACEEDGE_MOSQUITTO_DIR:-/etc/mosquitto}"
UNPRIVILEGED="${FACEEDGE_UNPRIVILEGED:-0}"
SERVICE_USER="faceedge"
# Marks the user as install.sh's: --purge removes it even after a plain --uninstall (no manifest).
USER_COMMENT="faceedge face recognition daemon"
UNITS=(faceedge.service faceedge-build.service faceedge-backup.service faceedge-backup.timer)

CURRENT_STEP="start"
CHANGED=0

log() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error in step "%s": %s\n' "$PROG" "$CURRENT_STEP" "$*" >&2; exit 1; }
step() { CURRENT_STEP="$1"; printf '\n==> %s\n' "$1"; }
# run CMD...: log it, then run it (a failure is reported with the step by on_error).
LAST_RUN=""
run() {
  printf '+ %s\n' "$*"
  LAST_RUN="$*"
  "$@"
}
on_error() {
  local code="$1" line="$2" cmd="$3"
  [ "$cmd" != '"$@"' ] || cmd="$LAST_RUN"
  printf '%s: step "%s" failed (exit %s at line %s): %s\n' "$PROG" "$CURRENT_STEP" "$code" "$line" "$cmd" >&2
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

usage() { sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
    --prefix=*) PREFIX="${1#*=}" ;;
    --config) CONFIG_SRC="${2:?--config needs a file}"; shift ;;
    --config=*) CONFIG_SRC="${1#*=}" ;;
    --broker) BROKER="${2:?--broker needs HOST[:PORT]}"; shift ;;
    --broker=*) BROKER="${1#*=}" ;;
    --models-from) MODELS_FROM="${2:?--models-from needs a directory}"; shift ;;
    --models-from=*) MODELS_FROM="${1#*=}" ;;
    --with-mosquitto) WITH_MOSQUITTO=1 ;;
    --with-jtop) WITH_JTOP=1 ;;
    --no-start) NO_START=1 ;;
    --dry-run) DRY_RUN=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) printf '%s: unknown option %s (see --help)\n' "$PROG" "$1" >&2; exit 2 ;;
  esac
  shift
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || die "--purge only goes with --uninstall"
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac
PREFIX="${PREFIX%/}"
VENV="$PREFIX/venv"
SHARE="$PREFIX/share"
MANIFEST="$PREFIX/install-manifest"
CONFIG="$ETC_DIR/config.toml"
PASSWORD_FILE="$ETC_DIR/mqtt_password"
MQTT_DEVICE_USER="faceedge"          # --with-mosquitto: the daemon's broker user
MQTT_ADMIN_USER="faceedge-admin"     # --with-mosquitto: the only user that may send commands
DROPIN="faceedge.service.d/credentials-compat.conf"
COMPAT_DROPIN="$UNIT_DIR/$DROPIN"

# ---------------------------------------------------------------- platform probes
# In FACEEDGE_FAKE_ROOT mode every probe reads text files instead of this machine.
root_path() { printf '%s%s' "$FAKE_ROOT" "$1"; }

dpkg_version() {  # dpkg_version PACKAGE -> version or "" when not installed
  if [ -n "$FAKE_ROOT" ]; then
    if [ -f "$FAKE_ROOT/dpkg/$1" ]; then tr -d '\n' < "$FAKE_ROOT/dpkg/$1"; fi
    return 0
  fi
  command -v dpkg-query >/dev/null 2>&1 || return 0
  local status
  status="$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)"
  [ "$status" = "installed" ] || return 0
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

systemd_version() {  # the installed systemd's version number, "" when unknown
  if [ -n "$FAKE_ROOT" ]; then
    if [ -f "$FAKE_ROOT/systemd" ]; then tr -d '\n' < "$FAKE_ROOT/systemd"; fi
    return 0
  fi
  command -v systemctl >/dev/null 2>&1 || return 0
  systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9]*\).*/\1/p' || true
}

machine_arch() {
  if [ -n "$FAKE_ROOT" ] && [ -f "$FAKE_ROOT/arch" ]; then tr -d '\n' < "$FAKE_ROOT/arch"; else uname -m; fi
}

PROBE_PY='
import re, sys
print("python=%d.%d.%d" % tuple(sys.version_info[:3]))
try:
    import tensorrt
    print("tensorrt=" + tensorrt.__version__)
except Exception:
    print("tensorrt=")
try:
    import cv2
    print("cv2=" + cv2.__version__)
    print("cv2_path=" + cv2.__file__)
    m = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    print("cv2_gstreamer=" + (m.group(1) if m else "NO"))
except Exception:
    print("cv2=")
'

# python_probe PYTHON: key=value lines (python, tensorrt, cv2, cv2_path, cv2_gstreamer)
python_probe() {
  if [ -n "$FAKE_ROOT" ]; then
    if [ -f "$FAKE_ROOT/python3-probe" ]; then cat "$FAKE_ROOT/python3-probe"; fi
    return 0
  fi
  "$1" -s -c "$PROBE_PY" 2>/dev/null || true
}

probe_value() { printf '%s\n' "$PROBE" | sed -n "s/^$1=//p" | head -n 1; }

# venv_available: can the system Python make a venv (Debian splits ensurepip into python3-venv)?
venv_available() {
  [ -n "$(dpkg_version "python${PY_MM}-venv")" ] || [ -n "$(dpkg_version python3-venv)" ] && return 0
  [ -z "$FAKE_ROOT" ] && "$SYSTEM_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1
}

# '# R32 (release), REVISION: 7.4, GCID: ...' -> 32.7.4
read_l4t() {
  local file line
  file="$(root_path /etc/nv_tegra_release)"
  if [ -f "$file" ]; then
    line="$(head -n 1 "$file")"
    if [[ "$line" =~ R([0-9]+)[[:space:]]*\(release\),[[:space:]]*REVISION:[[:space:]]*([0-9.]+) ]]; then
      printf '%s.%s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]%.}"
      return 0
    fi
  fi
  local v
  v="$(dpkg_version nvidia-l4t-core)"
  if [[ "$v" =~ ^([0-9]+\.[0-9]+(\.[0-9]+)?) ]]; then printf '%s' "${BASH_REMATCH[1]}"; fi
}

read_model() {
  local file
  file="$(root_path /proc/device-tree/model)"
  if [ -f "$file" ]; then tr -d '\000' < "$file" | head -n 1; fi
}

# ---------------------------------------------------------------- detection and plan
detect() {
  ARCH="$(machine_arch)"
  L4T="$(read_l4t)"
  JETSON_MODEL="$(read_model)"
  PLATFORM="linux"
  JETPACK=""; WANT_PYTHON=""; TENSORRT=""; CUDA=""; PRECISION="none"; PINS=(); JTOP_PIN=""
  OPENCV_APT="nvidia-opencv"
  PIP_BOOTSTRAP=(pip setuptools wheel)
  if [ -n "$L4T" ] || [[ "$JETSON_MODEL" == *Jetson* ]]; then
    PLATFORM="jetson"
    [ -n "$L4T" ] || die "this looks like a Jetson ($JETSON_MODEL) but the L4T release is unknown: no /etc/nv_tegra_release and no nvidia-l4t-core package; flash or upgrade JetPack first"
    case "$L4T" in
      32.5*) die "L4T $L4T is JetPack 4.5 (TensorRT 7.1, no build_serialized_network): faceedge needs TensorRT >= 8.0; upgrade to JetPack 4.6.x (L4T 32.7)" ;;
      32.6*|32.7*)
        JETPACK="4.6"; WANT_PYTHON="3.6"; TENSORRT="8.2"; CUDA="10.2"
        # JetPack 4.6 itself is L4T 32.6.1 with TensorRT 8.0; 4.6.1+ is 32.7 with 8.2.
        [[ "$L4T" == 32.7* ]] || { TENSORRT="8.0"; warn "L4T $L4T (JetPack 4.6, TensorRT 8.0): faceedge is tested on JetPack 4.6.1+ (L4T 32.7, TensorRT 8.2): upgrade with apt if you can"; }
        PINS=("numpy==1.19.4" "paho-mqtt==1.6.1" "pycuda==2022.1" "onnxruntime==1.10.0" "onnx==1.11.0" "protobuf<4" "tomli==1.2.3")
        JTOP_PIN="jetson-stats==4.3.2"
        PIP_BOOTSTRAP=("pip>=19.3,<22" "setuptools<60" "wheel<0.38") ;;
      35.*)
        JETPACK="5.1"; WANT_PYTHON="3.8"; TENSORRT="8.5"; CUDA="11.4"
        # numpy < 1.24: TensorRT 8.5.2's trt.nptype uses np.bool, removed in numpy 1.24 (facts/jetson.md).
        PINS=("numpy<1.24" "paho-mqtt>=2,<3" "pycuda>=2024.1" "onnxruntime<=1.19.2")
        JTOP_PIN="jetson-stats>=7,<8" ;;
      36.*)
        JETPACK="6.x"; WANT_PYTHON="3.10"; TENSORRT="10.3"; CUDA="12.6"
        PINS=("numpy<2" "paho-mqtt>=2,<3" "pycuda" "onnxruntime<=1.23.2")
        JTOP_PIN="jetson-stats>=7,<8" ;;
      39.*)
        JETPACK="7.x"; WANT_PYTHON="3.12"; TENSORRT="10.16"; CUDA="13"
        PINS=("numpy" "paho-mqtt>=2,<3" "pycuda" "onnxruntime")
        # JetPack 7 ships no OpenCV; Ubuntu 24.04's is built with GStreamer.
        OPENCV_APT="python3-opencv"
        JTOP_PIN="jetson-stats>=7,<8" ;;
      *) die "unsupported L4T $L4T ($JETSON_MODEL): faceedge needs JetPack 4.6 (L4T 32.7), 5.1 (L4T 35), 6.x (L4T 36) or 7.x (L4T 39)" ;;
    esac
    # Nano, TX1 and TX2 have no fast INT8; Xavier and Orin do (facts: jetson.md).
    # L4T 35+ runs only on Xavier, Orin and Thor; on L4T 32 the Xavier boards say "Xavier" or "AGX".
    case "$L4T:$JETSON_MODEL" in
      32.*:*Xavier*|32.*:*AGX*) PRECISION="int8" ;;
      32.*) PRECISION="fp16" ;;
      *) PRECISION="int8" ;;
    esac
    SYSTEM_PYTHON="${FACEEDGE_PYTHON:-/usr/bin/python3}"
    OPENCV="system"
    # numpy on a Jetson dies with "Illegal instruction" without it (the probe imports cv2 -> numpy).
    export OPENBLAS_CORETYPE=ARMV8
  else
    case "$ARCH" in
      x86_64|amd64|aarch64|arm64) ;;
      *) die "unsupported machine $ARCH: faceedge runs on x86_64 and arm64 Linux" ;;
    esac
    # The system's Python: the service user must be able to run it (not one under /root or /home).
    if [ -x /usr/bin/python3 ]; then SYSTEM_PYTHON="${FACEEDGE_PYTHON:-/usr/bin/python3}"
    else SYSTEM_PYTHON="${FACEEDGE_PYTHON:-$(command -v python3 || echo python3)}"; fi
    OPENCV="pip"
  fi

  PROBE="$(python_probe "$SYSTEM_PYTHON")"
  PYTHON_VERSION="$(probe_value python)"
  PY_MM="$(printf '%s' "$PYTHON_VERSION" | cut -d. -f1,2)"
  if [ "$PLATFORM" = linux ]; then
    WANT_PYTHON="$PY_MM"
    if [ "$PY_MM" = "3.6" ]; then
      # Python 3.6's pip is too old for manylinux2014 wheels (facts: jetson.md).
      PINS=("numpy==1.19.5" "onnxruntime==1.10.0" "opencv-python-headless==4.6.0.66" "paho-mqtt==1.6.1" "onnx==1.11.0" "protobuf<4" "tomli==1.2.3")
      PIP_BOOTSTRAP=("pip>=19.3,<22" "setuptools<60" "wheel<0.38")
    fi
  fi
  TRT_FOUND="$(probe_value tensorrt)"
  SYSTEMD_VERSION="$(systemd_version)"
  # LoadCredential= needs systemd 247 (JetPack 4.6 has 237, 5.1 has 245): a drop-in copies the
  # password at start instead (faceedge.service.d/credentials-compat.conf).
  CREDENTIALS="LoadCredential"
  if [[ "$SYSTEMD_VERSION" =~ ^[0-9]+$ ]] && [ "$SYSTEMD_VERSION" -lt 247 ]; then CREDENTIALS="copy"; fi
  CV2_FOUND="$(probe_value cv2)"
  CV2_PATH="$(probe_value cv2_path)"
  CV2_GST="$(probe_value cv2_gstreamer)"
  NVCC="$(root_path /usr/local/cuda/bin/nvcc)"

  # What apt must add, and what the user must fix by hand (JetPack parts are never guessed).
  APT=(); PROBLEMS=()
  [ -n "$PYTHON_VERSION" ] || PROBLEMS+=("no working Python 3 at $SYSTEM_PYTHON: install it (apt-get install python3)")
  if [ "$PLATFORM" = jetson ]; then
    venv_available || APT+=(python3-venv)
    [ -n "$(dpkg_version "python${WANT_PYTHON}-dev")" ] || [ -n "$(dpkg_version python3-dev)" ] || APT+=(python3-dev)
    if [ -n "$PY_MM" ] && [ "$PY_MM" != "$WANT_PYTHON" ]; then
      PROBLEMS+=("the system Python is $PY_MM but JetPack $JETPACK's TensorRT bindings are built for Python $WANT_PYTHON: run faceedge on /usr/bin/python$WANT_PYTHON (FACEEDGE_PYTHON=/usr/bin/python$WANT_PYTHON)")
    fi
    [ -n "$TRT_FOUND" ] || PROBLEMS+=("TensorRT does not import in $SYSTEM_PYTHON: sudo apt-get install python3-libnvinfer python3-libnvinfer-dev (or the whole JetPack: sudo apt-get install nvidia-jetpack)")
    if [ -z "$CV2_FOUND" ]; then
      PROBLEMS+=("OpenCV does not import in $SYSTEM_PYTHON: install an OpenCV built with GStreamer: sudo apt-get install $OPENCV_APT (never pip install opencv-python on a Jetson)")
    elif [ "$CV2_GST" != "YES" ]; then
      PROBLEMS+=("the OpenCV that $SYSTEM_PYTHON imports ($CV2_PATH, $CV2_FOUND) has no GStreamer, so CSI cameras will not open: it is probably pip's; remove it (sudo pip3 uninstall opencv-python opencv-python-headless) so JetPack's OpenCV is used")
    fi
    [ -f "$NVCC" ] || PROBLEMS+=("CUDA's compiler /usr/local/cuda/bin/nvcc is missing (pycuda builds from source): sudo apt-get install cuda-toolkit-$(printf '%s' "$CUDA" | tr . -) (or sudo apt-get install nvidia-jetpack)")
  else
    [ -z "$PY_MM" ] || venv_available || APT+=(python3-venv)
    case "$PY_MM" in 3.[0-5]) PROBLEMS+=("Python $PY_MM is too old: faceedge needs Python >= 3.6") ;; esac
  fi
  if [ "$WITH_MOSQUITTO" = 1 ] && [ -z "$(dpkg_version mosquitto)" ]; then APT+=(mosquitto); fi
  if [ "$WITH_JTOP" = 1 ] && [ "$PLATFORM" != jetson ]; then warn "--with-jtop only applies to a Jetson; ignored"; WITH_JTOP=0; fi

  if [ "$PLATFORM" = jetson ]; then
    VENV_ARGS=(--system-site-packages); EXTRAS=""
  else
    VENV_ARGS=(); EXTRAS="[opencv]"
    [ "${FACEEDGE_VENV_SYSTEM_SITE:-0}" = 1 ] && VENV_ARGS=(--system-site-packages)
  fi
  # Started without a camera too: the daemon is ready at once and serves gallery commands
  # (enrolling over MQTT) until a [[cameras]] table is added.
  START="yes"
  [ "$NO_START" = 0 ] || START="no"
  local config_file="$CONFIG"
  [ -f "$config_file" ] || config_file="${CONFIG_SRC:-$SRC/examples/faceedge.toml}"
  CAMERAS="$(count_cameras "$config_file")"
  if [ -n "$BROKER" ]; then
    BROKER_HOST="${BROKER%%:*}"; BROKER_PORT="1883"
    [[ "$BROKER" == *:* ]] && BROKER_PORT="${BROKER##*:}"
    [[ "$BROKER_PORT" =~ ^[0-9]+$ ]] || die "--broker $BROKER: the port must be a number"
  elif [ "$WITH_MOSQUITTO" = 1 ]; then
    BROKER_HOST="localhost"; BROKER_PORT="1883"
  else
    BROKER_HOST=""; BROKER_PORT=""
  fi
}

print_plan() {
  log "faceedge install plan"
  log "  detected:"
  if [ "$PLATFORM" = jetson ]; then
    log "    Jetson: ${JETSON_MODEL:-unknown model}, L4T $L4T = JetPack $JETPACK"
    log "    expects Python $WANT_PYTHON, TensorRT $TENSORRT, CUDA $CUDA; engines in $(printf '%s' "$PRECISION" | tr '[:lower:]' '[:upper:]')"
    log "    system Python $SYSTEM_PYTHON: ${PYTHON_VERSION:-missing}; TensorRT ${TRT_FOUND:-missing}; OpenCV ${CV2_FOUND:-missing} (GStreamer ${CV2_GST:-?})"
  else
    log "    plain Linux ($ARCH), no Jetson: CPU backend (ONNX Runtime), OpenCV from pip"
    log "    Python $SYSTEM_PYTHON: ${PYTHON_VERSION:-missing}"
  fi
  log "  will:"
  [ "${#APT[@]}" -eq 0 ] || log "    apt-get install ${APT[*]}"
  log "    create user $SERVICE_USER (system, home $STATE_DIR, groups video$([ "$WITH_JTOP" = 1 ] && printf ',jtop'))"
  log "    create venv $VENV from $SYSTEM_PYTHON ${VENV_ARGS[*]:-}"
  log "    pip install ${PIP_BOOTSTRAP[*]}, then faceedge$EXTRAS from $SRC${PINS[*]:+ with pins: ${PINS[*]}}"
  if [ "$PLATFORM" = jetson ]; then
    log "    build pycuda with CUDA_ROOT=/usr/local/cuda, PATH+=/usr/local/cuda/bin; OpenCV stays the system's (GStreamer; no pip OpenCV)"
    [ "$WITH_JTOP" = 0 ] || log "    pip install $JTOP_PIN (jetson-stats, AGPL-3.0; needs its jtop.service)"
  fi
  log "    create $ETC_DIR/config.toml from ${CONFIG_SRC:-$SRC/examples/faceedge.toml} unless it exists${BROKER_HOST:+ (broker $BROKER_HOST:$BROKER_PORT)}"
  log "    create $STATE_DIR/{gallery,engines,models,calibration,queue} (owner $SERVICE_USER, mode 0750/0700)"
  log "    fetch the models into $STATE_DIR/models${MODELS_FROM:+ (copied from $MODELS_FROM)}"
  if [ "$PLATFORM" = jetson ]; then
    if [ "$PRECISION" = int8 ]; then
      log "    build the TensorRT engines $CONFIG asks for (faceedge build-engines --config $CONFIG) into $STATE_DIR/engines; precision auto = INT8 once $STATE_DIR/calibration holds a calibration set, FP16 until then"
    else
      log "    build the TensorRT engines $CONFIG asks for (faceedge build-engines --config $CONFIG) into $STATE_DIR/engines; precision auto = FP16 (this GPU has no fast INT8; a Nano takes tens of minutes)"
    fi
  fi
  [ "$WITH_MOSQUITTO" = 0 ] || log "    configure mosquitto on 127.0.0.1:1883 and enable it"
  log "    install ${UNITS[*]} into $UNIT_DIR and enable faceedge.service"
  if [ "$CREDENTIALS" = copy ]; then
    log "    add $COMPAT_DROPIN: systemd $SYSTEMD_VERSION has no LoadCredential=, so $PASSWORD_FILE is copied to /run/faceedge at start"
  fi
  case "$START" in
    no) log "    not start the service (--no-start)" ;;
    *) log "    start faceedge.service and wait until it reports ready" ;;
  esac
  if [ "$CAMERAS" = 0 ]; then
    log "    no camera is configured yet: the daemon serves gallery commands over MQTT (enroll people now); to add one, edit $CONFIG, add a [[cameras]] table, then systemctl restart faceedge.service"
  fi
  if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    log "  must be fixed first:"
    local p; for p in "${PROBLEMS[@]}"; do log "    - $p"; done
  fi
  # Stable key=value lines (tests and scripts read these).
  log "platform=$PLATFORM"
  log "arch=$ARCH"
  if [ "$PLATFORM" = jetson ]; then
    log "jetson_model=$JETSON_MODEL"
    log "l4t=$L4T"
    log "jetpack=$JETPACK"
    log "tensorrt=$TENSORRT"
    log "cuda=$CUDA"
  fi
  log "python=$WANT_PYTHON"
  log "system_python=$SYSTEM_PYTHON"
  log "precision=$PRECISION"
  log "opencv=$OPENCV"
  log "backend=$([ "$PLATFORM" = jetson ] && echo tensorrt || echo onnxruntime)"
  log "venv=$VENV"
  log "venv_args=${VENV_ARGS[*]:-}"
  log "pip: ${PINS[*]:-}"
  log "pip_bootstrap: ${PIP_BOOTSTRAP[*]}"
  log "package=faceedge$EXTRAS"
  log "apt: ${APT[*]:-}"
  log "jtop=$([ "$WITH_JTOP" = 1 ] && echo "$JTOP_PIN" || echo no)"
  log "broker=${BROKER_HOST:+$BROKER_HOST:$BROKER_PORT}"
  log "systemd=${SYSTEMD_VERSION:-unknown}"
  log "credentials=$CREDENTIALS"
  log "config=$CONFIG"
  log "state_dir=$STATE_DIR"
  log "unit_dir=$UNIT_DIR"
  log "start=$START"
  log "cameras=$CAMERAS"
  log "problems=${#PROBLEMS[@]}"
}

# ---------------------------------------------------------------- helpers
count_cameras() {  # count_cameras FILE -> the number of [[cameras]] tables (0 without the file)
  if [ -f "$1" ]; then grep -Ec '^[[:space:]]*\[\[[[:space:]]*cameras[[:space:]]*\]\]' "$1" || true; else echo 0; fi
}

have_systemd() { [ "$UNPRIVILEGED" != 1 ] && [ -d "$(root_path /run/systemd/system)" ]; }

manifest_get() {
  if [ -f "$MANIFEST" ]; then sed -n "s/^$1=//p" "$MANIFEST" | tail -n 1; fi
}
manifest_set() {
  [ "$(manifest_get "$1")" != "$2" ] || return 0
  mkdir -p "$(dirname "$MANIFEST")"
  touch "$MANIFEST"
  if grep -q "^$1=" "$MANIFEST"; then
    sed -i "s|^$1=.*|$1=$2|" "$MANIFEST"
  else
    printf '%s=%s\n' "$1" "$2" >> "$MANIFEST"
  fi
}

# install_if_changed SRC DEST MODE: copy when the content differs; sets CHANGED.
install_if_changed() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then return 0; fi
  run install -m "$3" "$1" "$2"
  CHANGED=1
}

owner() {  # owner PATH... : chown to the service user (privileged installs only)
  [ "$UNPRIVILEGED" = 1 ] || run chown "$SERVICE_USER:$SERVICE_USER" "$@"
}

# Render a unit: default paths replaced by this install's paths.
render_unit() {
  local args=(-e "s|/opt/faceedge|$PREFIX|g" -e "s|/etc/faceedge|$ETC_DIR|g")
  # The condition only skips the build off-Jetson; a Jetson may lack the file (L4T from dpkg).
  [ "$PLATFORM" != jetson ] || args+=(-e '\|^ConditionPathExists=/etc/nv_tegra_release$|d')
  sed "${args[@]}" "$1"
}

# Render the config: state paths and broker.
render_config() {
  local user=""
  [ "$WITH_MOSQUITTO" = 0 ] || user="$MQTT_DEVICE_USER"
  sed -e "s|/var/lib/faceedge|$STATE_DIR|g" "$1" | awk -v host="$BROKER_HOST" -v port="$BROKER_PORT" -v user="$user" '
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]\[\]]/, "", section) }
    section == "mqtt" && host != "" && /^[[:space:]]*#?[[:space:]]*host[[:space:]]*=/ { print "host = \"" host "\""; next }
    section == "mqtt" && port != "" && /^[[:space:]]*#?[[:space:]]*port[[:space:]]*=/ { print "port = " port; next }
    section == "mqtt" && user != "" && /^[[:space:]]*#?[[:space:]]*username[[:space:]]*=/ { print "username = \"" user "\""; next }
    { print }'
}

new_secret() {  # 24 random characters for a generated broker password
  head -c 18 /dev/urandom | base64 | tr '/+' '_-'
}

mqtt_setting() {  # KEY FALLBACK -> a setting as the daemon resolves it (prefix, device id)
  local value
  value="$(STATE_DIRECTORY="$STATE_DIR" "$VENV/bin/faceedge" config get "$CONFIG" "$1" 2>/dev/null || true)"
  printf '%s\n' "${value:-$2}"
}

configure_mosquitto() {
  # A broker closed to anonymous clients: the device's user may write only its own topic root
  # (and Home Assistant discovery, and shared galleries); only the admin user may send commands
  # to it. The passwords are generated once; running install.sh again keeps them.
  local mconf="$MOSQUITTO_DIR/conf.d/faceedge.conf" passwd="$MOSQUITTO_DIR/faceedge.passwd"
  local acl="$MOSQUITTO_DIR/faceedge.acl" admin_file="$ETC_DIR/mqtt_admin_password" tmpm root prefix
  command -v mosquitto_passwd >/dev/null 2>&1 || die "mosquitto_passwd is missing: apt-get install mosquitto"
  run mkdir -p "$MOSQUITTO_DIR/conf.d"
  if [ ! -s "$PASSWORD_FILE" ]; then
    new_secret > "$PASSWORD_FILE"
    manifest_set generated_password 1
    log "+ wrote a generated MQTT password for $MQTT_DEVICE_USER to $PASSWORD_FILE"
  fi
  if [ ! -s "$admin_file" ]; then
    ( umask 077; new_secret > "$admin_file" )
    manifest_set created_admin_password 1
  fi
  if [ ! -f "$passwd" ]; then
    ( umask 077; : > "$passwd" )
    manifest_set mosquitto_passwd "$passwd"
  fi
  # Not through run(): it would print the passwords.
  log "+ mosquitto_passwd -b $passwd $MQTT_DEVICE_USER *** ; mosquitto_passwd -b $passwd $MQTT_ADMIN_USER ***"
  mosquitto_passwd -b "$passwd" "$MQTT_DEVICE_USER" "$(cat "$PASSWORD_FILE")" >/dev/null || die "mosquitto_passwd failed"
  mosquitto_passwd -b "$passwd" "$MQTT_ADMIN_USER" "$(cat "$admin_file")" >/dev/null || die "mosquitto_passwd failed"
  prefix="$(mqtt_setting mqtt.prefix faceedge)"
  root="$prefix/$(mqtt_setting device.id "$(hostname | tr -c 'A-Za-z0-9_\n-' '-')")"
  tmpm="$(mktemp)"
  {
    printf '# Written by faceedge install.sh: who may use which topics on this broker.\n'
    printf 'user %s\ntopic readwrite %s/#\ntopic write homeassistant/#\ntopic readwrite %s/_gallery/#\n\n' \
      "$MQTT_DEVICE_USER" "$root" "$prefix"
    printf 'user %s\ntopic readwrite #\n' "$MQTT_ADMIN_USER"
  } > "$tmpm"
  install_if_changed "$tmpm" "$acl" 0640
  printf '# Written by faceedge install.sh: a local broker for the faceedge daemon, closed to anonymous clients.\nlistener 1883 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n' \
    "$passwd" "$acl" > "$tmpm"
  install_if_changed "$tmpm" "$mconf" 0644
  rm -f "$tmpm"
  if [ "$UNPRIVILEGED" != 1 ] && getent group mosquitto >/dev/null 2>&1; then
    run chgrp mosquitto "$passwd" "$acl"
    run chmod 0640 "$passwd" "$acl"
  fi
  manifest_set mosquitto_conf "$mconf"
  manifest_set mosquitto_acl "$acl"
  log "the broker refuses anonymous clients; send gallery commands as user $MQTT_ADMIN_USER with the password in $admin_file (root only)"
}

config_value() {  # config_value SECTION KEY -> value of a simple `key = "value"` line
  awk -v want="$1" -v key="$2" '
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]\[\]]/, "", section); next }
    section == want && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
      sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]*#.*$/, ""); gsub(/"/, ""); print; exit }' "$CONFIG"
}

resolved_gallery() {  # CONFIG [STATE_DIR]: the gallery file the daemon uses, as faceedge resolves it
  local config="$1" state="${2:-$STATE_DIR}" path=""
  if [ -x "$VENV/bin/faceedge" ] && [ -f "$config" ]; then
    path="$(env -u FACEEDGE_GALLERY STATE_DIRECTORY="$state" "$VENV/bin/faceedge" config get "$config" gallery.path 2>/dev/null || true)"
  fi
  if [ -z "$path" ] && [ -f "$config" ]; then path="$(CONFIG="$config" config_value gallery path)"; fi
  printf '%s\n' "${path:-$state/gallery/gallery.db}"
}

source_stamp() {
  {
    "$VENV/bin/python" --version 2>&1
    printf '%s\n' "${PINS[@]:-}" "${PIP_BOOTSTRAP[@]}" "$EXTRAS" "$WITH_JTOP"
    (cd "$SRC" && find edge engine_builder calibration setup.cfg setup.py pyproject.toml -type f \
      \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' -o -name '*.json' \) 2>/dev/null | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -d' ' -f1
}

show_journal() {
  if command -v journalctl >/dev/null 2>&1; then
    log "last journal lines of faceedge (why it did not become ready):"
    journalctl -u faceedge-build.service -u faceedge.service -n 40 --no-pager -o cat >&2 || true
  fi
}

# ---------------------------------------------------------------- uninstall
do_uninstall() {
  step "uninstall"
  if [ "$UNPRIVILEGED" != 1 ] && [ "$(id -u)" != 0 ]; then die "run as root: sudo $0 --uninstall"; fi
  local state_dir unit_dir etc_dir u
  state_dir="$(manifest_get state_dir)"; state_dir="${state_dir:-$STATE_DIR}"
  unit_dir="$(manifest_get unit_dir)"; unit_dir="${unit_dir:-$UNIT_DIR}"
  etc_dir="$(manifest_get etc_dir)"; etc_dir="${etc_dir:-$ETC_DIR}"

  CURRENT_STEP="stop and remove the systemd units"
  if have_systemd; then
    for u in faceedge-backup.timer faceedge.service faceedge-build.service faceedge-backup.service; do
      if [ -f "$unit_dir/$u" ]; then run systemctl disable --now "$u" || warn "could not stop $u"; fi
    done
  fi
  for u in "${UNITS[@]}" "$DROPIN"; do
    if [ -f "$unit_dir/$u" ]; then run rm -f "$unit_dir/$u"; fi
  done
  # Kept when it holds the user's own drop-ins (systemctl edit).
  if [ -d "$unit_dir/faceedge.service.d" ] && rmdir "$unit_dir/faceedge.service.d" 2>/dev/null; then
    log "+ rmdir $unit_dir/faceedge.service.d"
  fi
  if have_systemd; then run systemctl daemon-reload; fi

  CURRENT_STEP="remove the mosquitto snippet"
  local mconf
  mconf="$(manifest_get mosquitto_conf)"
  if [ -n "$mconf" ] && [ -f "$mconf" ]; then
    run rm -f "$mconf"
    for u in "$(manifest_get mosquitto_acl)" "$(manifest_get mosquitto_passwd)"; do
      if [ -n "$u" ] && [ -f "$u" ]; then run rm -f "$u"; fi
    done
    if [ "$(manifest_get created_admin_password)" = 1 ] && [ -f "$etc_dir/mqtt_admin_password" ]; then
      run rm -f "$etc_dir/mqtt_admin_password"
    fi
    if have_systemd; then run systemctl try-restart mosquitto.service || true; fi
    log "mosquitto itself stays installed (apt-get remove mosquitto if you do not need it)"
  fi

  # Where the gallery is (asked before the config and the venv go; the same resolution as the
  # daemon's): its top entry in the state dir is kept, and so is the old default gallery.db.
  local gallery keep="gallery"
  gallery="$(resolved_gallery "$etc_dir/config.toml" "$state_dir")"
  case "$gallery" in
    "$state_dir"/*) keep="${gallery#"$state_dir"/}"; keep="${keep%%/*}" ;;
  esac

  CURRENT_STEP="remove the configuration"
  if [ "$PURGE" = 1 ]; then
    if [ -d "$etc_dir" ]; then run rm -rf "$etc_dir"; fi
  else
    if [ "$(manifest_get created_config)" = 1 ] && [ -f "$etc_dir/config.toml" ]; then run rm -f "$etc_dir/config.toml"; fi
    if [ -f "$etc_dir/install.env" ]; then run rm -f "$etc_dir/install.env"; fi
    if [ "$(manifest_get generated_password)" = 1 ] && [ -f "$etc_dir/mqtt_password" ]; then
      run rm -f "$etc_dir/mqtt_password"
    elif [ "$(manifest_get created_password)" = 1 ] && [ -f "$etc_dir/mqtt_password" ] && [ ! -s "$etc_dir/mqtt_password" ]; then
      run rm -f "$etc_dir/mqtt_password"
    fi
    if [ -d "$etc_dir" ]; then
      if rmdir "$etc_dir" 2>/dev/null; then log "+ rmdir $etc_dir"; else log "kept $etc_dir (files you added are left there)"; fi
    fi
  fi

  CURRENT_STEP="remove the state (engines, models, queue)"
  if [ -d "$state_dir" ]; then
    if [ "$PURGE" = 1 ]; then
      run rm -rf "$state_dir"
    else
      local entry
      for entry in "$state_dir"/* "$state_dir"/.[!.]*; do
        [ -e "$entry" ] || continue
        case "$(basename "$entry")" in
          gallery|gallery.db|gallery.db-wal|gallery.db-shm|gallery.db-journal) continue ;;
          "$keep"|"$keep"-wal|"$keep"-shm|"$keep"-journal) continue ;;
        esac
        run rm -rf "$entry"
      done
      if rmdir "$state_dir" 2>/dev/null; then
        log "+ rmdir $state_dir"
      else
        log "kept the gallery: $(printf '%s ' "$state_dir"/*)(remove it with --uninstall --purge)"
      fi
    fi
  fi

  CURRENT_STEP="remove the user"
  if [ "$PURGE" = 1 ] && [ "$UNPRIVILEGED" != 1 ] && [ "$(getent passwd "$SERVICE_USER" | cut -d: -f5 || true)" = "$USER_COMMENT" ]; then
    run userdel "$SERVICE_USER"
  elif [ "$PURGE" = 1 ] && [ "$UNPRIVILEGED" != 1 ] && id "$SERVICE_USER" >/dev/null 2>&1; then
    log "kept user $SERVICE_USER (install.sh did not create it)"
  elif id "$SERVICE_USER" >/dev/null 2>&1 && [ "$UNPRIVILEGED" != 1 ]; then
    log "kept user $SERVICE_USER (it owns the kept gallery; --purge removes it)"
  fi

  CURRENT_STEP="remove the venv and code"
  if [ -d "$PREFIX" ]; then
    run rm -rf "$VENV" "$SHARE" "$MANIFEST"
    rmdir "$PREFIX" 2>/dev/null || log "kept $PREFIX (it holds files faceedge did not put there)"
  fi
  log ""
  log "faceedge uninstalled."
}

# ---------------------------------------------------------------- install steps
do_install() {
  if [ "${#PROBLEMS[@]}" -gt 0 ]; then
    CURRENT_STEP="check prerequisites"
    local p; for p in "${PROBLEMS[@]}"; do printf '%s: %s\n' "$PROG" "$p" >&2; done
    die "${#PROBLEMS[@]} prerequisite(s) missing (listed above, each with what to install)"
  fi
  if [ "$UNPRIVILEGED" != 1 ] && [ "$(id -u)" != 0 ]; then
    die "run as root: sudo $0 (or --dry-run to only see the plan)"
  fi
  local example="${CONFIG_SRC:-$SRC/examples/faceedge.toml}"
  [ -f "$example" ] || [ -f "$CONFIG" ] || die "config source $example not found"

  if [ "${#APT[@]}" -gt 0 ]; then
    step "install system packages: ${APT[*]}"
    [ "$UNPRIVILEGED" != 1 ] || die "missing ${APT[*]}; install them (apt-get install ${APT[*]}) or run as root"
    run apt-get update -qq
    DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq "${APT[@]}"
  fi

  step "create the service user $SERVICE_USER"
  if [ "$UNPRIVILEGED" = 1 ]; then
    log "unprivileged install: no user created (the service runs as whoever starts it)"
  else
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
      run useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
        --comment "$USER_COMMENT" --user-group "$SERVICE_USER"
      CHANGED=1
    fi
    local groups=(video)
    [ "$WITH_JTOP" = 0 ] || groups+=(jtop)
    local g
    for g in "${groups[@]}"; do
      getent group "$g" >/dev/null || run groupadd --system "$g"
      if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$g"; then run usermod -a -G "$g" "$SERVICE_USER"; CHANGED=1; fi
    done
  fi
  manifest_set etc_dir "$ETC_DIR"
  manifest_set state_dir "$STATE_DIR"
  manifest_set unit_dir "$UNIT_DIR"

  step "create the venv $VENV and install faceedge"
  if [ ! -x "$VENV/bin/python" ]; then
    run mkdir -p "$PREFIX"
    run "$SYSTEM_PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"
    CHANGED=1
  fi
  local stamp
  stamp="$(source_stamp)"
  if [ -f "$VENV/.faceedge-stamp" ] && [ "$(cat "$VENV/.faceedge-stamp")" = "$stamp" ]; then
    log "venv is up to date"
  else
    local constraints="$VENV/faceedge-constraints.txt"
    printf '%s\n' "${PINS[@]:-}" > "$constraints"
    run "$VENV/bin/python" -m pip install -q --upgrade "${PIP_BOOTSTRAP[@]}"
    if [ "$PLATFORM" = jetson ]; then
      # numpy first (the pinned one), then pycuda, which has no wheels: it builds here against
      # JetPack's CUDA and that numpy (no build isolation, so no unpinned numpy gets imported).
      run "$VENV/bin/python" -m pip install -q -c "$constraints" numpy
      PATH="/usr/local/cuda/bin:$PATH" CUDA_ROOT=/usr/local/cuda CUDA_INC_DIR=/usr/local/cuda/include \
        run "$VENV/bin/python" -m pip install -q --no-build-isolation -c "$constraints" pycuda
      if [ "$WITH_JTOP" = 1 ]; then
        run "$VENV/bin/python" -m pip install -q "$JTOP_PIN"
        if [ ! -f /etc/systemd/system/jtop.service ] && [ ! -f /lib/systemd/system/jtop.service ]; then
          warn "jtop.service is not installed: jetson-stats' server runs as root; install it with: sudo /usr/bin/python3 -m pip install '$JTOP_PIN' (AGPL-3.0)"
        fi
      fi
    fi
    # A copy of the source (pip builds from it; it also keeps this script for --uninstall).
    run "$VENV/bin/python" -m pip install -q -c "$constraints" "$SRC$EXTRAS"
    if [ "$PLATFORM" = jetson ]; then
      # JetPack's OpenCV must stay the one imported (GStreamer): refuse a pip OpenCV.
      if "$VENV/bin/python" -m pip list --local 2>/dev/null | grep -qi '^opencv'; then
        die "a pip OpenCV got into $VENV; it would shadow JetPack's (no GStreamer): $VENV/bin/pip uninstall opencv-python opencv-python-headless"
      fi
      run "$VENV/bin/python" -c 'import cv2, tensorrt; print("cv2", cv2.__version__, cv2.__file__); print("tensorrt", tensorrt.__version__)'
    fi
    printf '%s\n' "$stamp" > "$VENV/.faceedge-stamp"
    CHANGED=1
  fi
  run mkdir -p "$SHARE"
  install_if_changed "$SRC/install.sh" "$SHARE/install.sh" 0755
  if [ -f "$SRC/examples/faceedge.toml" ]; then install_if_changed "$SRC/examples/faceedge.toml" "$SHARE/faceedge.toml.example" 0644; fi

  step "create $STATE_DIR"
  local d
  run mkdir -p "$STATE_DIR"
  for d in gallery engines models calibration queue; do
    [ -d "$STATE_DIR/$d" ] || run mkdir -p "$STATE_DIR/$d"
  done
  owner "$STATE_DIR" "$STATE_DIR/gallery" "$STATE_DIR/engines" "$STATE_DIR/models" "$STATE_DIR/calibration" "$STATE_DIR/queue"
  run chmod 0750 "$STATE_DIR" "$STATE_DIR/engines" "$STATE_DIR/models" "$STATE_DIR/calibration"
  run chmod 0700 "$STATE_DIR/gallery" "$STATE_DIR/queue"

  step "create the configuration $CONFIG"
  run mkdir -p "$ETC_DIR"
  run chmod 0755 "$ETC_DIR"
  if [ -f "$CONFIG" ]; then
    log "keeping the existing $CONFIG (never overwritten)"
    [ -z "$BROKER" ] || warn "--broker $BROKER not applied: edit [mqtt] host/port in $CONFIG yourself"
  else
    local tmp
    tmp="$(mktemp)"
    render_config "$example" > "$tmp"
    run install -m 0640 "$tmp" "$CONFIG"
    rm -f "$tmp"
    [ "$UNPRIVILEGED" = 1 ] || run chgrp "$SERVICE_USER" "$CONFIG"
    manifest_set created_config 1
    CHANGED=1
  fi
  if [ ! -e "$PASSWORD_FILE" ]; then
    # The unit loads it as a credential (LoadCredential=), so it must exist; empty = no password.
    run install -m 0600 /dev/null "$PASSWORD_FILE"
    manifest_set created_password 1
  fi
  if "$VENV/bin/faceedge" config --help >/dev/null 2>&1; then
    run "$VENV/bin/faceedge" config check "$CONFIG" || die "$CONFIG does not validate (see above); fix it and run install.sh again"
  else
    warn "this faceedge has no \`config check\`; $CONFIG not validated"
  fi

  step "fetch the models"
  local profile model_dir
  profile="$(config_value models profile)"; profile="${profile:-default}"
  model_dir="$(config_value models dir)"; model_dir="${model_dir:-$STATE_DIR/models}"
  run mkdir -p "$model_dir"
  if [ -n "$MODELS_FROM" ]; then
    [ -d "$MODELS_FROM" ] || die "--models-from $MODELS_FROM is not a directory"
    local f
    for f in "$MODELS_FROM"/*.onnx "$MODELS_FROM"/faceedge-models.json; do
      [ -f "$f" ] || continue
      [ -f "$model_dir/$(basename "$f")" ] || run cp "$f" "$model_dir/"
    done
  fi
  run "$VENV/bin/faceedge" models fetch --profile "$profile" --dir "$model_dir" --quiet
  owner -R "$model_dir"

  # Engines are built from the daemon's own config (its models, [engines], det_size), so they
  # are the ones it looks up; other build-engines options would override the config.
  # BUILD_ARGS holds only the extras, shared with faceedge-build.service through install.env.
  local calib_dir config_calib build_precision
  calib_dir="$STATE_DIR/calibration"
  config_calib="$(config_value engines calibration_dir)"
  build_precision="$(config_value engines precision)"; build_precision="${build_precision:-auto}"
  BUILD_ARGS=()
  # A set named in the config wins (the daemon checks engines against that one).
  if [ "$PRECISION" = int8 ] && [ -z "$config_calib" ] && [ "$build_precision" != fp16 ] && [ "$build_precision" != fp32 ]; then
    if [ -f "$calib_dir/manifest.json" ]; then
      BUILD_ARGS+=(--calibration "$calib_dir")
    elif [ "$build_precision" = auto ]; then
      log "no INT8 calibration set in $calib_dir yet: engines are FP16 until you collect one"
      log "  (faceedge calibrate collect --out $calib_dir, then run install.sh again)"
    fi
  fi

  if [ "$PLATFORM" = jetson ]; then
    step "build the TensorRT engines (precision $build_precision from $CONFIG; tens of minutes on a Nano)"
    # STATE_DIRECTORY as systemd sets it: the config's "" dirs mean the same place as for the daemon.
    if [ "$UNPRIVILEGED" = 1 ]; then
      run env STATE_DIRECTORY="$STATE_DIR" "$VENV/bin/faceedge" build-engines --no-progress --config "$CONFIG" "${BUILD_ARGS[@]}"
    else
      run runuser -u "$SERVICE_USER" -- env HOME="$STATE_DIR" STATE_DIRECTORY="$STATE_DIR" PATH="/usr/local/cuda/bin:$PATH" \
        OPENBLAS_CORETYPE=ARMV8 "$VENV/bin/faceedge" build-engines --no-progress --config "$CONFIG" "${BUILD_ARGS[@]}"
    fi
  fi

  if [ "$WITH_MOSQUITTO" = 1 ]; then
    step "configure the local mosquitto broker"
    configure_mosquitto
    if have_systemd; then run systemctl enable mosquitto.service; run systemctl restart mosquitto.service; fi
  fi

  step "install the systemd units into $UNIT_DIR"
  run mkdir -p "$UNIT_DIR"
  local u tmpu gallery_path
  for u in "${UNITS[@]}"; do
    tmpu="$(mktemp)"
    render_unit "$SRC/systemd/$u" > "$tmpu"
    install_if_changed "$tmpu" "$UNIT_DIR/$u" 0644
    rm -f "$tmpu"
  done
  if [ "$CREDENTIALS" = copy ]; then
    run mkdir -p "$(dirname "$COMPAT_DROPIN")"
    tmpu="$(mktemp)"
    render_unit "$SRC/systemd/$DROPIN" > "$tmpu"
    install_if_changed "$tmpu" "$COMPAT_DROPIN" 0644
    rm -f "$tmpu"
  fi
  tmpu="$(mktemp)"
  {
    printf '# Written by faceedge install.sh (run it again to refresh): faceedge-build.service arguments.\n'
    printf 'FACEEDGE_BUILD_ARGS="%s"\n' "${BUILD_ARGS[*]:-}"
    if [ "$PLATFORM" = jetson ]; then printf 'OPENBLAS_CORETYPE=ARMV8\n'; fi
    gallery_path="$(resolved_gallery "$CONFIG")"
    printf 'FACEEDGE_GALLERY=%s\n' "$gallery_path"
  } > "$tmpu"
  install_if_changed "$tmpu" "$ETC_DIR/install.env" 0644
  rm -f "$tmpu"
  if have_systemd; then
    run systemctl daemon-reload
    run systemctl enable faceedge.service faceedge-backup.timer
  else
    log "systemd is not running here (or unprivileged install): units written, not enabled"
  fi

  if [ "$START" = no ]; then
    step "not starting (--no-start)"
    log "start it with: systemctl start faceedge.service"
  elif have_systemd; then
    step "start faceedge.service and wait until it is ready"
    run systemctl start faceedge-backup.timer
    local verb=start
    [ "$CHANGED" = 0 ] || verb=restart
    # Type=notify: systemctl returns once the daemon sent READY=1, or fails.
    if ! run systemctl "$verb" faceedge.service; then
      show_journal
      die "faceedge.service did not become ready (journal lines above; more: journalctl -u faceedge.service)"
    fi
    run systemctl is-active faceedge.service
    log "faceedge is running: journalctl -u faceedge.service -f"
  else
    step "start"
    log "no systemd: run it by hand: $VENV/bin/faceedge run --config $CONFIG"
  fi
  CAMERAS="$(count_cameras "$CONFIG")"
  if [ "$CAMERAS" = 0 ]; then
    log ""
    log "no camera is configured yet: faceedge serves gallery commands over MQTT, so you can enroll people now."
    log "to add a camera: edit $CONFIG, add a [[cameras]] table (see $SHARE/faceedge.toml.example),"
    log "check it with: $VENV/bin/faceedge config check $CONFIG, then: systemctl restart faceedge.service"
  fi
  log ""
  log "faceedge installed: config $CONFIG, state $STATE_DIR, venv $VENV."
}

# ---------------------------------------------------------------- main
if [ "$UNINSTALL" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    log "uninstall plan: stop and remove ${UNITS[*]} from $UNIT_DIR, $VENV, $SHARE, $CONFIG (if install.sh created it), $STATE_DIR except $STATE_DIR/gallery$([ "$PURGE" = 1 ] && printf ' -- purge: also the gallery, %s and the user %s' "$ETC_DIR" "$SERVICE_USER")"
    exit 0
  fi
  do_uninstall
  exit 0
fi

step "detect the platform"
detect
print_plan
if [ "$DRY_RUN" = 1 ]; then exit 0; fi
do_install
