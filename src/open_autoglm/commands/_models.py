"""``open-autoglm models``: list, prepare and locate the models the backends can run.

Model preparation (numpy, onnx) is imported in each action's function.
"""

from __future__ import annotations

import argparse
from typing import Any

from open_autoglm.commands._choices import DEFAULT_MODEL_VARIANT, KNOWN_MODELS, MODEL_VARIANTS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, prepare and locate models (SmolLM2-135M from its PyPI wheel)",
        description="Prepare models from installed packages into the user cache folder.",
    )
    commands = parser.add_subparsers(title="model commands", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="known models and what is prepared")
    listing.set_defaults(run=_run_list)

    prepare = commands.add_parser("prepare", help="write the HF folder and the ONNX models")
    prepare.add_argument("name", help=f"model name: {', '.join(KNOWN_MODELS)}")
    prepare.add_argument(
        "--variant",
        action="append",
        choices=MODEL_VARIANTS,
        help="prepare only this variant (repeatable; default: all)",
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if prepared")
    prepare.set_defaults(run=_run_prepare)

    path = commands.add_parser("path", help="print the folder of a prepared model")
    path.add_argument("name")
    path.add_argument(
        "--variant", choices=MODEL_VARIANTS, default=DEFAULT_MODEL_VARIANT,
        help="which prepared form's folder to print",
    )  # fmt: skip
    path.set_defaults(run=_run_path)


def _run_list(args: argparse.Namespace) -> int:
    from open_autoglm.instrumented_servers.models import (
        KNOWN_MODELS,
        VARIANTS,
        is_prepared,
        model_dir,
    )

    for name, model in sorted(KNOWN_MODELS.items()):
        ready = [v for v in VARIANTS if is_prepared(model_dir(name, v))]
        state = f"prepared: {', '.join(ready)}" if ready else "not prepared"
        print(f"{name}\t{state}\t{model.description}")
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from open_autoglm.instrumented_servers.models import VARIANTS, Variant, prepare_model

    variants: list[Variant] = args.variant or list(VARIANTS)
    for variant, folder in prepare_model(args.name, variants, force=args.force).items():
        print(f"{variant}\t{folder}")
    return 0


def _run_path(args: argparse.Namespace) -> int:
    from open_autoglm.instrumented_servers.models import resolve_model

    print(resolve_model(args.name, args.variant, prepare=False))
    return 0
