"""`sleepstream` command line: one command, subcommands in ``sleepstream/commands/``.

Each subcommand module has ``HELP`` (one line), ``EXAMPLE`` (shown in --help),
``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch, pylsl, mne)
happen inside ``run`` so ``--help`` and light commands start fast. Errors a user can
cause (:class:`sleepnet.errors.SleepstreamError`) become one line and exit code 2.

The library's errors name parameters (``channel_index=5 is out of range``); the user typed
flags. :func:`main` is the one place that says each parameter as the command's flag
(``--channel-index 5 is out of range``), with the map :func:`parameter_flags` makes for
each command: every option's destination is the parameter of that name
(``--channel-index`` is ``channel_index``), and a command module's ``FLAGS`` (a dict,
optional) names the parameters its flags carry under another name
(``{"timeout_s": "--timeout"}``).
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


def parameter_flags(parser: argparse.ArgumentParser, module: object = None) -> dict[str, str]:
    """Each parameter a command's errors may name, as the flag the user types for it.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser: each option's destination maps to its first long flag
        (``channel_index`` -> ``--channel-index``).
    module : module, optional
        The command's module: its ``FLAGS`` dict, when it has one, adds (or overrides) the
        parameters its flags carry under another name (``timeout_s`` -> ``--timeout``).

    Returns
    -------
    dict of str to str
        Parameter -> flag.
    """
    flags = {}
    for action in parser._actions:
        long = [o for o in action.option_strings if o.startswith("--")]
        if long and action.dest != argparse.SUPPRESS:
            flags.setdefault(action.dest, long[0])
    flags.update(getattr(module, "FLAGS", None) or {})
    return flags


def build_parser() -> argparse.ArgumentParser:
    """The ``sleepstream`` parser, with one subcommand per module of ``COMMANDS``.

    Each subcommand gets its module's ``HELP`` and ``EXAMPLE``, its options from the
    module's ``add_arguments``, the default model's summary in its help when it takes
    ``--weights``, and the defaults ``_module`` and ``_flags`` (:func:`parameter_flags`)
    that :func:`main` uses. A command whose module is absent is left out.

    Returns
    -------
    argparse.ArgumentParser
        The parser (``-v``/``--verbose`` plus the subcommands).
    """
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
        p.set_defaults(_module=mod, _flags=parameter_flags(p, mod))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``sleepstream`` command line.

    Sets up logging from ``-v`` (warnings; ``-v`` info, ``-vv`` debug), runs the command,
    and turns a user's mistake (:class:`sleepnet.errors.SleepstreamError`) into one line
    on stderr that names the flags the user typed, without a traceback.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``sleepstream``; None reads ``sys.argv``.

    Returns
    -------
    int
        The exit code: the command's (0 when it returns None), 2 for a user's mistake or
        no command (the help is printed), 130 on Ctrl-C.
    """
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
        print(f"sleepstream {args.command}: error: {exc.naming(args._flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sleepstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
