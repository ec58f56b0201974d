"""`sleepstream` command line: one command, subcommands in ``sleepstream/commands/``.

Each subcommand module has ``HELP`` (one line), ``EXAMPLE`` (shown in --help),
``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch, pylsl, mne)
happen inside ``run`` so ``--help`` and light commands start fast. Errors a user can
cause (:class:`sleepnet.errors.SleepstreamError`) become one line and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sleepnet.errors import SleepstreamError

COMMANDS = ("score", "train", "evaluate", "simulate", "replay", "live", "demo", "report", "ward")


def _load(name: str):
    try:
        return importlib.import_module(f"sleepstream.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sleepstream.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleepstream",
        description="Real-time sleep-stage scoring of single-channel Fpz-Cz EEG over LSL.",
        epilog="Run 'sleepstream COMMAND --help' for each command's options and an example.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _load(name)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP,
                           epilog=f"example:\n  {mod.EXAMPLE}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        if any(a.dest == "weights" for a in p._actions):
            from sleepnet.weights import default_model_summary

            p.epilog += f"\n\ndefault model (--weights NAME|DIR picks another):\n  {default_model_summary()}"
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if args.verbose else "%(levelname)s: %(message)s"
    logging.basicConfig(level=level, format=fmt)
    try:
        return int(args._module.run(args) or 0)
    except SleepstreamError as exc:
        print(f"sleepstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sleepstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
