"""Engine command line: `python -m engine.cli build-tiny OUT_DIR [--seed N]`, `... build-sd15 OUT_DIR`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build-tiny", help="write the tiny random-weight SD pipeline to OUT_DIR (kept if already there)"
    )
    build.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    build.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    sd15 = commands.add_parser(
        "build-sd15", help="write SD 1.5's architecture with random weights (fp16, 2.1 GB) to OUT_DIR"
    )
    sd15.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    sd15.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    args = parser.parse_args(argv)

    if args.command == "build-tiny":
        # Imported here so `--help` answers without loading torch and diffusers.
        from engine.tiny_model import ensure_tiny_model

        print(ensure_tiny_model(args.out_dir, seed=args.seed))
    elif args.command == "build-sd15":
        from engine.random_sd import build_random_sd15

        print(build_random_sd15(args.out_dir, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
