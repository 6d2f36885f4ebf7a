"""Issue 16's limits on the runtime code: no class over 250 lines, no function over 60."""
import ast
import os

from tests.support import REPO

MAX_CLASS, MAX_FUNCTION = 250, 60


def test_no_class_over_250_lines_and_no_function_over_60():
    too_long = []
    for package in ("edge", "engine_builder", "calibration"):
        for directory, _, files in os.walk(os.path.join(REPO, package)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(directory, name)
                with open(path) as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    # Python 3.6/3.7 have no end_lineno: the last line of the node's last statement
                    end = max(getattr(n, "lineno", node.lineno) for n in ast.walk(node))
                    end = getattr(node, "end_lineno", None) or end
                    limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                    if end - node.lineno + 1 > limit:
                        too_long.append("{}:{} {} ({} lines)".format(os.path.relpath(path, REPO), node.lineno,
                                                                     node.name, end - node.lineno + 1))
    assert not too_long, "over issue 16's limits: " + "; ".join(too_long)
