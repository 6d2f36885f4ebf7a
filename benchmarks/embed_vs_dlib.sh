#!/usr/bin/env bash
# `faceedge embed --json` against dlib's face_recognition on the same photos, start-up included,
# the two alternated, ROUNDS rounds; prints wall and CPU seconds (user+sys) of every run and the
# medians as one JSON line. Speed is measured here, never asserted by a test.
#   benchmarks/embed_vs_dlib.sh FACEEDGE DLIB_PYTHON PHOTO_LIST [ROUNDS] [-- faceedge embed options]
# FACEEDGE: the faceedge command; DLIB_PYTHON: a Python with face_recognition (dlib-bin wheel);
# PHOTO_LIST: a file with one photo path per line (e.g. the first 200 lfw-dev photos, sorted).
set -euo pipefail
faceedge="$1" dlib_python="$2" list="$3" rounds="${4:-4}"
shift $(( $# < 4 ? $# : 4 ))
[ "${1:-}" = "--" ] && shift
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t photos < "$list"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
measure() {  # NAME COMMAND...: appends "NAME wall cpu"
  local name="$1"; shift
  /usr/bin/time -f "$name %e %U %S" -o "$out.t" "$@" > /dev/null 2>&1
  awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$out.t" >> "$out"
}
for _ in $(seq "$rounds"); do
  measure faceedge "$faceedge" embed --json "$@" "${photos[@]}"
  measure dlib "$dlib_python" "$here/dlib_face_recognition.py" "${photos[@]}"
done
rm -f "$out.t"
python3 - "$out" "${#photos[@]}" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, wall, cpu = line.split()
    runs.setdefault(name, []).append((float(wall), float(cpu)))
photos = int(sys.argv[2])
med = dict((n, (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))) for n, r in runs.items())
print(json.dumps({"photos": photos, "runs": runs,
                  "median_wall_s": dict((n, m[0]) for n, m in med.items()),
                  "median_cpu_s": dict((n, m[1]) for n, m in med.items()),
                  "faceedge_ms_per_photo": round(1000 * med["faceedge"][0] / photos, 1),
                  "wall_ratio": round(med["dlib"][0] / med["faceedge"][0], 2),
                  "cpu_ratio": round(med["dlib"][1] / med["faceedge"][1], 2)}))
EOF
