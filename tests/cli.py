"""Running `python -m edge ...` from the repository, as a user would."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def faceedge(*args):
    """(exit code, stdout, stderr) of `python -m edge ARGS`."""
    proc = subprocess.Popen([sys.executable, "-m", "edge"] + list(args), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err
