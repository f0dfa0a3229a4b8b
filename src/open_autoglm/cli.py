"""The ``open-autoglm`` console script: parse arguments, build config, call the library.

Each subcommand lives in the package that implements it, in a ``_command.py`` module with
``register(subparsers)``; the parser stores a ``run(args) -> int`` function as ``args.run``.
User mistakes are reported as one line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from open_autoglm import __version__
from open_autoglm._errors import UsageError

#: Modules defining subcommands, in the order ``--help`` lists them.
_COMMAND_MODULES = (
    "open_autoglm.instrumented_servers._command",
    "open_autoglm.commands.proxy",
    "open_autoglm.dashboards._command",
    "open_autoglm.instrumented_servers.models._command",
    "open_autoglm.loadgen._command",
    "open_autoglm.collector._command",
    "open_autoglm.analysis._command",
    "open_autoglm.analysis._gate_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="open-autoglm",
        description="Benchmark LLM inference servers and explain their latency.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level for messages on stderr (default: WARNING)",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status: int = args.run(args)
    except UsageError as exc:
        print(f"open-autoglm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("open-autoglm: interrupted", file=sys.stderr)
        return 130
    return status
