"""The `rmb` command: one subcommand module each under benchmark/commands/."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from benchmark.commands import COMMAND_MODULES
from benchmark.perf import raise_gc_threshold
from judges.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmb", description="Run the RMB reward-model benchmark against LLM judges."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    raise_gc_threshold()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.func(args)
    except UserError as e:
        print(f"rmb: error: {e}", *getattr(e, "__notes__", ()), sep="\n", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rmb: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
