"""Runs tests/real_tensorrt inside each environment with a real tensorrt module that
.ci/setup-tensorrt.sh prepared (FACEEDGE_REAL_TENSORRT lists them): 8.5.2.2, 10.x and 11.x.
Without that list the tests skip, except in CI (CI=true), where a missing module is a failure."""
import os
import subprocess

import pytest

from tests.cli import REPO

GENERATIONS = ("8.5", "10", "11")


def _environments():
    path = os.environ.get("FACEEDGE_REAL_TENSORRT", "")
    envs = {}
    if path and os.path.isfile(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 4:
                    envs[parts[0]] = parts[1:]
    return envs


def _missing(reason):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI must run the real TensorRT tests: {} (.ci/setup-tensorrt.sh, sourced by run-tests.sh)"
                    .format(reason))
    pytest.skip("{}: run ./run-tests.sh, which installs them (.ci/setup-tensorrt.sh)".format(reason))


@pytest.mark.parametrize("generation", GENERATIONS)
def test_real_tensorrt_module(generation):
    env_line = _environments().get(generation)
    if env_line is None:
        _missing("no real TensorRT {} environment (FACEEDGE_REAL_TENSORRT unset or without it)".format(generation))
    python, pythonpath, libs = env_line
    if not os.path.exists(python):
        _missing("{} does not exist".format(python))
    env = dict(os.environ, FACEEDGE_REAL_TENSORRT_RUN="1",
               PYTHONPATH=os.pathsep.join(p for p in (REPO, pythonpath) if p))
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, os.environ.get("LD_LIBRARY_PATH", "")) if p)
    proc = subprocess.Popen([python, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                             "--confcutdir", os.path.join(REPO, "tests", "real_tensorrt"),
                             os.path.join(REPO, "tests", "real_tensorrt")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert " passed" in out and " skipped" not in out, out
    check = subprocess.Popen([python, "-c", "import tensorrt; print(tensorrt.__version__)"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, universal_newlines=True)
    version = check.communicate(timeout=120)[0].strip()
    assert version.startswith(generation + "."), version
