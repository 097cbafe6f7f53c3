"""The ``transferkit`` command: thin over the Python API."""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transferkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="offline demo: real pretrained weights on real data vs from-scratch and classic ML")
    demo.add_argument("--quick", action="store_true", help="the smallest labelled-set size only (about 10 minutes on 2 CPU cores)")
    demo.add_argument("--output-dir", default="demo-output", help="where report.html / report.md go (default: demo-output)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo uses packaged weights only
    from .errors import TransferkitError

    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.output_dir, quick=args.quick)
    except TransferkitError as exc:
        print(f"transferkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferkit: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
