"""The ``open-autoglm`` console script: parse arguments, build config, call the library.

Each subcommand lives in :mod:`open_autoglm.commands`, in a module with
``register(subparsers)``; the parser stores a ``run(args) -> int`` function as ``args.run``.
Mistakes are reported as one line on stderr with exit code 2, never a traceback: this is the
one place that maps :class:`~open_autoglm.errors.OpenAutoGLMError` (the library's errors and
the command line's :class:`~open_autoglm.commands.UsageError`) to an exit code. A stop by
SIGINT, SIGTERM or SIGHUP (:class:`~open_autoglm.errors.Interrupted`) exits 128 + signal.
Started as a child of another ``open-autoglm`` (a managed run's server and collector), the
process watches its parent and stops when the parent is gone
(:func:`open_autoglm._child_process.watch_parent`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from open_autoglm import __version__
from open_autoglm._child_process import watch_parent
from open_autoglm._redact import redact_text
from open_autoglm._signals import STOP_SIGNALS, ignore_stop_signals
from open_autoglm.commands import COMMAND_MODULES
from open_autoglm.errors import Interrupted, OpenAutoGLMError

#: The exit statuses of a run stopped by a signal (128 + signal).
_STOPPED = frozenset(128 + int(sig) for sig in STOP_SIGNALS)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already gives it or there
    is none (no value, an off switch, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or not action.option_strings
            or default in (None, False, argparse.SUPPRESS)
            or default == []
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """``open-autoglm``'s parsers, sub-commands' included: help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="open-autoglm",
        description="Benchmark LLM inference servers and explain their latency.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for messages on stderr",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            status = _main(argv)
        finally:  # --help's SystemExit too: flushed here, not at exit, so a closed pipe is
            sys.stdout.flush()  # caught below rather than printed by the interpreter
    except BrokenPipeError:
        return _stdout_closed()
    if status in _STOPPED:  # a finished stop only exits now: a late signal cannot undo it
        ignore_stop_signals()
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    watch_parent()
    try:
        status: int = args.run(args)
    except OpenAutoGLMError as exc:
        text = redact_text(str(exc)).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        print(f"open-autoglm: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        print(f"open-autoglm: {stopped}", file=sys.stderr)
        return stopped.exit_code
    return status


def _stdout_closed() -> int:
    """The reader of standard output is gone: point stdout at /dev/null so that Python's
    flush at exit fails no more (the documented recipe, docs.python.org "Note on SIGPIPE"),
    and return 128 + SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout has no descriptor (replaced in-process)
        pass
    return 128 + int(getattr(signal, "SIGPIPE", 13))
