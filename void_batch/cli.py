"""`void-batch`: remove objects (and what they caused) from shots, one or a manifest of them.

Every command shares one error boundary: a problem with the input (a bad manifest, a missing
file, a wrong option value) prints one `error: ...` line on stderr and exits 1; a usage
mistake (a flag missing or combined wrongly) prints the usage line and exits 2; Ctrl-C exits
130. By default the terminal shows progress and results, not the Prefect and Ray logs
(`--log-level` shows them).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Each module defines register(subparsers) and sets `func` on its parser.
COMMANDS = ("remove", "masks", "manifest", "run", "reprocess", "report")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


class UsageError(Exception):
    """A command line that cannot work as given (exit 2, with the usage line)."""


def _log_level_parent(default) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--log-level", choices=LOG_LEVELS, default=default,
                   help="log lines shown on the terminal from Prefect, Ray and void-batch "
                        "(default: none; progress and results are always shown)")
    return p


def build_parser() -> argparse.ArgumentParser:
    from void_batch import __version__

    parser = argparse.ArgumentParser(prog="void-batch", description=__doc__.split("\n\n")[0],
                                     parents=[_log_level_parent(None)])
    parser.add_argument("--version", action="version", version=f"void-batch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub_parent = _log_level_parent(argparse.SUPPRESS)  # after the command name, too
    for name in COMMANDS:
        module = importlib.import_module(f"void_batch.commands.{name}")
        before = set(sub.choices)
        module.register(sub)
        for added in set(sub.choices) - before:
            sub.choices[added]._add_container_actions(sub_parent)
    return parser


def configure_logging(level: str | None) -> None:
    """Before Prefect or Ray is imported: their loggers at `level` (quiet by default)."""
    name = (level or "critical").upper()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", name)
    os.environ.setdefault("RAY_LOG_LEVEL", name.lower())
    logging.basicConfig(level=getattr(logging, name), format="%(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    for noisy in ("ray", "prefect", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(getattr(logging, name))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(getattr(args, "log_level", None))
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        sub = parser._subparsers._group_actions[0].choices.get(args.command, parser)
        sub.print_usage(sys.stderr)
        print(f"void-batch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the boundary: one line, never a traceback for a known error
        from void_engine.errors import VoidError

        if not isinstance(exc, (VoidError, ValueError, OSError, ConnectionError)):
            raise
        from tasks.errors import one_line

        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
