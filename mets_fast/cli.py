"""The ``mets-fast`` command: ``mets-fast info`` reports the version and the kernels in use."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mets-fast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version and kernel back ends")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import __version__
        from .loss import backends

        print(json.dumps({"version": __version__, "backends": backends()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
