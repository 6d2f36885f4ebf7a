"""`faceedge` command line: one subcommand per module in edge/commands.

Each module in edge.commands (but those named _*) exposes `register(subparsers)`, which adds its
subcommands and sets `func` (args -> exit code) on each parser.
"""
import argparse
import importlib
import logging
import pkgutil
import sys

import edge
import edge.commands
from edge.errors import FaceEdgeError


def build_parser():
    # type: () -> argparse.ArgumentParser
    parser = argparse.ArgumentParser(
        prog="faceedge",
        description="Face recognition for NVIDIA Jetson and Linux: models, gallery, daemon, engines.")
    parser.add_argument("--version", action="version", version="faceedge " + edge.__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(edge.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module("edge.commands." + info.name)
        module.register(subparsers)
    # --help lists the commands alphabetically (modules register several, in their own order)
    subparsers._choices_actions.sort(key=lambda action: action.dest)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(2)
    try:
        code = args.func(args)
    except FaceEdgeError as exc:
        print("faceedge: error: {}".format(exc), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("faceedge: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
