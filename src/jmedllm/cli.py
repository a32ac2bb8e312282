"""The `jmedllm` command: a thin shell over the Python API.

Each subcommand lives in ``jmedllm.commands.<name>`` and exports ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy
libraries (torch, transformers) inside ``run`` only, so that ``jmedllm --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from jmedllm.errors import UserError  # re-exported: commands raise jmedllm.cli.UserError

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]

# name -> module; a plain dict, no plugin magic.
COMMANDS: dict[str, str] = {
    "data": "jmedllm.commands.data",
    "eval": "jmedllm.commands.eval",
    "score": "jmedllm.commands.score",
    "compare": "jmedllm.commands.compare",
    "report": "jmedllm.commands.report",
    "train": "jmedllm.commands.train",
    "merge": "jmedllm.commands.merge",
    "synth": "jmedllm.commands.synth",
    "demo": "jmedllm.commands.demo",
    "export": "jmedllm.commands.export",
}


def build_parser() -> argparse.ArgumentParser:
    from jmedllm import __version__

    parser = argparse.ArgumentParser(prog="jmedllm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jmedllm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a `nargs="*"` positional only once: `train sft --recipe R --model M key=value`
    # leaves `key=value` unrecognised. A command that names its positional list in `_trailing`
    # gets such trailing words appended to it; anything else stays an error.
    trailing = getattr(args, "_trailing", None)
    if extra:
        if trailing is None or any(x.startswith("-") for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, trailing, list(getattr(args, trailing) or []) + extra)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"jmedllm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    # Run through the imported module, so that `python -m jmedllm.cli` and the commands
    # share one UserError class (under -m this file is also loaded as __main__).
    from jmedllm.cli import main as _main

    sys.exit(_main())
