#!/usr/bin/env bash
# CI/dev set-up for the real camera tests (issue 11), called by run-tests.sh:
#  - GStreamer, its RTSP server (for the test fixture) and plugins (x264 encoder, avdec_h264, rtspsrc);
#  - Debian's python3-opencv (built with GStreamer) in a venv made with --system-site-packages from
#    Debian's own /usr/bin/python3: the JetPack arrangement (facts/jetson.md), where OpenCV and
#    GStreamer come from the OS and pip must not shadow them.
# Usage: .ci/setup-gstreamer.sh VENV_DIR     (creates/refreshes VENV_DIR; idempotent)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:?usage: setup-gstreamer.sh VENV_DIR}"
SYS_PY=/usr/bin/python3

PACKAGES=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0 python3-gi python3-opencv python3-numpy python3-venv
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf '\n==> installing %s (apt)\n' "${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv: Debian's python + its dist-packages (cv2, gi, numpy); only what Debian lacks comes from pip.
stamp="$VENV/.stamp"
want="$("$SYS_PY" --version 2>&1) $(cksum < setup.cfg) $(dpkg-query -W -f='${Version}' python3-opencv)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  printf '\n==> creating venv %s (Debian %s, --system-site-packages)\n' "$VENV" "$("$SYS_PY" --version 2>&1)"
  rm -rf "$VENV"
  "$SYS_PY" -m venv --system-site-packages "$VENV"
  # Not the [opencv] extra: pip's OpenCV would shadow Debian's. numpy stays Debian's (cv2 is built on it).
  np_version="$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')"
  "$VENV/bin/pip" install -q -e ".[test]" "numpy==$np_version"
  echo "$want" > "$stamp"
fi
"$VENV/bin/python" - <<'PY'
import cv2, sys
info = cv2.getBuildInformation()
gst = [l for l in info.splitlines() if l.strip().startswith("GStreamer:")]
if not gst or "YES" not in gst[0]:
    sys.exit("setup-gstreamer: this venv's OpenCV ({}) has no GStreamer".format(cv2.__file__))
if not cv2.__file__.startswith("/usr/"):
    sys.exit("setup-gstreamer: cv2 comes from {}, not Debian's python3-opencv".format(cv2.__file__))
print("debian venv: OpenCV {} with GStreamer from {}".format(cv2.__version__, cv2.__file__))
PY
