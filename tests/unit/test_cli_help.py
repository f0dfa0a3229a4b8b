"""Every option of every command has help text, and the help shows its default."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from open_autoglm.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "open-autoglm"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_has_help_that_shows_its_default() -> None:
    missing: list[str] = []
    hidden_default: list[str] = []
    walked = 0
    for path, parser in _parsers(build_parser()):
        walked += 1
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            name = f"{path} {action.option_strings[-1]}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(name)
                continue
            default = action.default
            if default is None or default is False or default == argparse.SUPPRESS or default == []:
                continue
            text = formatter._expand_help(action)
            shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
            if str(shown) not in text:
                hidden_default.append(f"{name}: {text!r}")
    assert walked > 10  # the sub-commands' own sub-commands too
    assert missing == [], missing
    assert hidden_default == [], hidden_default


def test_the_help_of_check_states_the_three_exit_codes_the_readme_gives() -> None:
    """``open-autoglm --help`` once said "(exit 0 or 1)": a run it cannot judge exits 2."""
    parser = build_parser()
    overview = " ".join(parser.format_help().split())
    assert "(exit 0 pass, 1 fail, 2 cannot judge)" in overview
    (check,) = (p for path, p in _parsers(parser) if path == "open-autoglm check")
    text = " ".join(check.format_help().split())
    assert "1 when one fails, 2 on a usage error or when it cannot judge" in text
    assert "it never passes or fails what it did not see" in text
