#!/usr/bin/env bash
# The real TensorRT Python modules for tests/real_tensorrt (facts/jetson.md), sourced by run-tests.sh
# after the test venvs exist. Exports FACEEDGE_REAL_TENSORRT: a file with one line per generation,
#   NAME<TAB>PYTHON<TAB>PYTHONPATH<TAB>LD_LIBRARY_PATH
# which tests/test_tensorrt_real.py runs the real-module tests with.
#  - 8.5: the complete tensorrt==8.5.2.2 wheel (JetPack 5.1's exact version) with its CUDA wheels,
#    about 2.7 GB, in its own Python 3.8 venv with numpy 1.24 (so 8.5's np.bool trap is real).
#  - 10, 11: tensorrt-cu12-bindings (the real module, ~1.3 MB each) on the py312 test venv, with
#    stand-in libnvinfer/libnvonnxparser/libnvinfer_plugin built here from a few lines of C whose
#    factories all return NULL, exactly like a machine without a GPU. Nothing binary is committed.
# Cached in $FACEEDGE_TRT_CACHE (default ~/.cache/faceedge/tensorrt), keyed by the versions below:
# a rerun costs a second; a fresh machine downloads ~1.7 GB from PyPI (about a minute here).
# Expects VENVS (run-tests.sh).

trt_setup() {
  local root="${FACEEDGE_TRT_CACHE:-$HOME/.cache/faceedge/tensorrt}"
  local want py38
  mkdir -p "$root"
  # Bump when what is installed below changes.
  want="tensorrt 8.5.2.2 / bindings 10.3.0, 11.4.0.106 / v2 $("$VENVS/py312/bin/python" --version 2>&1)"
  exec 9>"$root/.lock"
  flock 9                     # helpers and CI share the cache
  if [ ! -f "$root/.stamp" ] || [ "$(cat "$root/.stamp")" != "$want" ]; then
    printf '\n==> real TensorRT modules for the tests (into %s)\n' "$root"
    rm -rf "$root/trt85" "$root/trt10" "$root/trt11"
    py38="${FACEEDGE_PY38:-$HOME/.pyenv/versions/3.8.18/bin/python3.8}"
    [ -x "$py38" ] || py38="$(command -v python3.8 || true)"
    [ -n "$py38" ] || { echo "setup-tensorrt: no Python 3.8 for tensorrt==8.5.2.2" >&2; return 1; }
    "$py38" -m venv "$root/trt85"
    "$root/trt85/bin/pip" install -q --upgrade "pip<25"
    "$root/trt85/bin/pip" install -q "tensorrt==8.5.2.2" "nvidia-cudnn-cu11==8.6.0.163" \
      "nvidia-cublas-cu11==11.11.3.6" "nvidia-cuda-runtime-cu11==11.8.89" \
      "numpy>=1.24,<1.25" "onnx==1.16.2" "onnxruntime==1.19.2" "opencv-python-headless==4.10.0.84" \
      "pytest==8.3.5"
    trt_bindings 10 "10.3.0" "$root/trt10"
    trt_bindings 11 "11.4.0.106" "$root/trt11"
    echo "$want" > "$root/.stamp"
  fi
  flock -u 9
  # Per test venv (each worktree has its own py312), so written on every run.
  printf '8.5\t%s\t%s\t%s\n' "$root/trt85/bin/python" "" "" > "$VENVS/real-tensorrt.tsv"
  for v in 10 11; do
    printf '%s\t%s\t%s\t%s\n' "$v" "$VENVS/py312/bin/python" "$root/trt$v/site" "$root/trt$v/lib" \
      >> "$VENVS/real-tensorrt.tsv"
  done
  export FACEEDGE_REAL_TENSORRT="$VENVS/real-tensorrt.tsv"
}

# trt_bindings MAJOR VERSION DIR: the real bindings module under DIR/site (importable as `tensorrt`),
# stand-in shared libraries under DIR/lib.
trt_bindings() {
  local major="$1" version="$2" dir="$3" lib
  mkdir -p "$dir/site/tensorrt" "$dir/lib" "$dir/src"
  "$VENVS/py312/bin/pip" install -q --no-deps --target "$dir/site" "tensorrt-cu12-bindings==$version"
  # The `tensorrt` meta-package only downloads from NVIDIA's index; its module re-exports the bindings.
  printf 'import sys\nimport tensorrt_bindings\nsys.modules[__name__] = tensorrt_bindings\n' \
    > "$dir/site/tensorrt/__init__.py"
  cat > "$dir/src/nvinfer.c" <<'EOF'
#include <stddef.h>
void *createInferBuilder_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return NULL; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
void *getBuilderPluginRegistry(int capability) { return NULL; }
EOF
  cat > "$dir/src/nvonnxparser.c" <<'EOF'
#include <stddef.h>
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
EOF
  printf 'int initLibNvInferPlugins(void *logger, const char *ns) { return 0; }\n' > "$dir/src/nvinfer_plugin.c"
  for lib in nvinfer nvonnxparser nvinfer_plugin; do
    cc -shared -fPIC -O2 -o "$dir/lib/lib$lib.so.$major" "$dir/src/$lib.c"
  done
}

trt_setup
