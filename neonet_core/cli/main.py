"""The ``neonet`` command line: one console script with subcommands.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser and
sets ``func(args) -> int``. Errors: one line on stderr, non-zero exit; the traceback only with ``--debug``.
With ``--progress json`` every stdout line is a JSON object (other lines go to stderr). SIGTERM stops a
command like Ctrl-C, so its temporary outputs are removed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from neonet_core import __version__
from neonet_core.errors import NeoNetError
from neonet_core.fileio import os_problem
from neonet_core.progress import MODES, JsonLinesOnly, set_default_mode

# Subcommand modules under neonet_core.cli, in the order `neonet --help` lists them.
COMMAND_MODULES = ["phantom", "cohort", "crop", "train", "segment", "generate", "balance", "cv", "predict", "demo", "bundle", "worker"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neonet",
        description="NeoNet: perineural invasion (PNI) prediction from 3D MRI.",
    )
    parser.add_argument("--version", action="version", version=f"neonet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument(
        "--progress", choices=MODES, default="bar", help="progress display: bar (terminal), json (JSON lines on stdout), none"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"neonet_core.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    set_default_mode(args.progress)
    for stream in (sys.stdout, sys.stderr):  # a path the terminal's encoding cannot show must not crash the report
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    stdout = sys.stdout
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        set_default_mode("none")
        sys.stdout = open(os.devnull, "w")
    elif args.progress == "json":
        sys.stdout = JsonLinesOnly(stdout, sys.stderr)
    previous = _stop_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("neonet: interrupted", file=sys.stderr)
        return 130
    except (NeoNetError, ValueError, OSError) as err:
        if args.debug:
            raise
        print(f"neonet {args.command}: error: {_describe(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # unexpected: still one line unless --debug
        if args.debug:
            raise
        print(f"neonet {args.command}: internal error: {type(err).__name__}: {_one_line(err)} (rerun with --debug)", file=sys.stderr)
        return 3
    finally:
        if isinstance(sys.stdout, JsonLinesOnly):
            sys.stdout.close_pending()
        sys.stdout = stdout
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt (so temporary outputs are cleaned up); returns the old handler."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        return None


def _describe(err: BaseException) -> str:
    """One line; an OSError as "path: problem"."""
    if isinstance(err, OSError) and not isinstance(err, NeoNetError) and err.filename is not None:
        return f"{err.filename}: {os_problem(err)}"
    return _one_line(err)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
