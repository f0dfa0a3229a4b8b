"""The CLI's subcommands: each module defines ``register(subparsers)`` and imports its
library lazily inside ``run(args)``."""
