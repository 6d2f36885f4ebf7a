#!/usr/bin/env bash
# The test command (README, second command; .ci/run calls exactly this).
# Runs the suite on the oldest and newest JetPack Pythons (3.6 and 3.12, via pyenv,
# falling back to python3), plus vermin and shellcheck. Installs what it needs.
#   ./run-tests.sh            both Pythons
#   ./run-tests.sh -- ARGS    extra pytest arguments (e.g. -k gallery)
set -euo pipefail
cd "$(dirname "$0")"
REPO="$PWD"
VENVS="${FACEEDGE_VENVS:-$REPO/.venv}"
PY_OLD="${FACEEDGE_PY_OLD:-$HOME/.pyenv/versions/3.6.15/bin/python3.6}"
PY_NEW="${FACEEDGE_PY_NEW:-$HOME/.pyenv/versions/3.12.1/bin/python3.12}"
export FACEEDGE_TEST_MODELS="${FACEEDGE_TEST_MODELS:-$HOME/.cache/faceedge/test-models}"
PYTEST_ARGS=()
if [ "${1:-}" = "--" ]; then shift; PYTEST_ARGS=("$@"); fi

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'run-tests: %s\n' "$*" >&2; exit 1; }

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ "${#need_apt[@]}" -gt 0 ]; then
  step "installing ${need_apt[*]} (apt)"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq || die "apt-get update failed; install ${need_apt[*]} by hand"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "could not install ${need_apt[*]} with apt-get"
fi

# make_venv NAME PYTHON: a venv with faceedge (editable) and the test tools.
make_venv() {
  local name="$1" py="$2" dir="$VENVS/$1"
  [ -x "$py" ] || { command -v python3 >/dev/null || die "no $py and no python3"; py="$(command -v python3)"; }
  local stamp="$dir/.stamp" want
  want="$("$py" --version 2>&1) $(cat setup.cfg .ci/constraints-py36.txt 2>/dev/null | cksum)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  step "creating venv $name ($("$py" --version 2>&1))"
  rm -rf "$dir"
  "$py" -m venv "$dir"
  if "$dir/bin/python" -c 'import sys; sys.exit(sys.version_info >= (3, 7))'; then
    # Python 3.6's pip is too old for manylinux2014 wheels (facts/jetson.md).
    "$dir/bin/pip" install -q --upgrade "pip<22" "setuptools<60" "wheel<0.38"
    "$dir/bin/pip" install -q -c .ci/constraints-py36.txt -e ".[opencv,test]"
  else
    "$dir/bin/pip" install -q --upgrade pip setuptools wheel
    "$dir/bin/pip" install -q -e ".[opencv,test]"
  fi
  echo "$want" > "$stamp"
}

make_venv py36 "$PY_OLD"
make_venv py312 "$PY_NEW"
.ci/setup-gstreamer.sh "$VENVS/debian"   # GStreamer, RTSP server, Debian OpenCV venv (camera tests)
. .ci/setup-tensorrt.sh   # real TensorRT 8.5 / 10.x / 11.x modules for tests/real_tensorrt

step "vermin: runtime code must run on Python 3.6"
out="$("$VENVS/py312/bin/vermin" -q --no-tips --violations --eval-annotations -t=3.6- edge engine_builder calibration 2>&1 || true)"
[ -z "$out" ] || { echo "$out"; die "vermin found code that needs Python > 3.6"; }
echo "ok"

# Test files named in ARGS run alone; otherwise the whole tests/ directory. -rs: say why tests skipped.
TARGETS=(tests)
for arg in "${PYTEST_ARGS[@]}"; do
  case "$arg" in tests/*|tests) TARGETS=() ;; esac
done
status=0
for name in py36 py312; do
  step "pytest on $("$VENVS/$name/bin/python" --version 2>&1)"
  "$VENVS/$name/bin/python" -m pytest -q -rs -p no:cacheprovider "${PYTEST_ARGS[@]}" ${TARGETS[@]+"${TARGETS[@]}"} || status=1
done
# The camera tests again with Debian's OpenCV (GStreamer inside), as on a Jetson; skips there fail.
CAMERA_TESTS=(tests/test_camera.py tests/test_camera_gstreamer.py tests/test_rtsp_live.py tests/test_hires.py tests/test_faults_camera.py)
if [ "${#PYTEST_ARGS[@]}" -eq 0 ] || printf '%s\n' "${PYTEST_ARGS[@]}" | grep -qE 'test_(camera|rtsp|hires|faults_camera)'; then
  step "camera tests on Debian's $("$VENVS/debian/bin/python" --version 2>&1) with its OpenCV + GStreamer"
  [ "${#PYTEST_ARGS[@]}" -gt 0 ] && CAMERA_TESTS=("${PYTEST_ARGS[@]}")
  FACEEDGE_REQUIRE_GSTREAMER=1 "$VENVS/debian/bin/python" -m pytest -q -p no:cacheprovider "${CAMERA_TESTS[@]}" || status=1
fi
exit "$status"
