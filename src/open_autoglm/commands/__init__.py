"""The subcommands of ``open-autoglm``: the only code that knows flag names.

Each module defines ``register(subparsers)``, which adds its parser and stores a
``run(args) -> int`` function as ``args.run``. A command imports its library inside its run
function, so that building the parser (``--help``, ``--version``) imports none of them.
"""

from open_autoglm.commands._backend_options import parse_backend_options
from open_autoglm.commands._errors import UsageError

#: Modules defining subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "open_autoglm.commands._serve",
    "open_autoglm.commands._proxy",
    "open_autoglm.commands._dashboards",
    "open_autoglm.commands._models",
    "open_autoglm.commands._benchmark",
    "open_autoglm.commands._collector",
    "open_autoglm.commands._analyze",
    "open_autoglm.commands._check",
    "open_autoglm.commands._compare",
)

__all__ = ["COMMAND_MODULES", "UsageError", "parse_backend_options"]
