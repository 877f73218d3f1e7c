"""``neonet worker``: one warm process that runs ``neonet`` commands read from stdin.

Starting ``neonet`` costs seconds before any work (importing torch and MONAI); the Slicer panel
keeps one worker alive between jobs instead (``NeoNetSlicerLib.worker.WarmWorker``). Protocol, one
JSON object per line, always with ``--progress json``:

- stdin: ``{"argv": ["predict", "--image", "a.nrrd", ...]}`` (the arguments after ``neonet``); end of
  input ends the worker.
- stdout: ``{"event": "worker_ready", "pid": N}`` once the imports are done; then per command its
  own JSON events, ``{"event": "stderr", "line": ...}`` for each line it wrote to stderr, and
  ``{"event": "job_end", "returncode": N}`` (N as ``neonet`` would exit with).

A command runs exactly as in its own process (same parser, same error lines and exit codes).
SIGTERM stops the running command like Ctrl-C (its temporary outputs are removed) and ends the worker.
"""

from __future__ import annotations

import io
import json
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run commands read as JSON lines on stdin in one warm process (the Slicer panel's worker)",
        description="Run neonet commands in one warm process (torch and MONAI are imported once). Reads one JSON "
        'object per line on stdin, {"argv": ["predict", "--image", "a.nrrd", ...]} (the arguments after neonet); '
        'writes JSON lines on stdout: {"event": "worker_ready"} once, then per command its progress events, '
        '{"event": "stderr", "line": ...} for each line it wrote to stderr and {"event": "job_end", "returncode": N}. '
        "End of input ends the worker; SIGTERM stops the running command and the worker.",
    )
    parser.set_defaults(func=run)


class _StderrEvents(io.TextIOBase):
    """A stderr for one command: each line becomes a ``stderr`` event on ``events`` (the real stdout)."""

    def __init__(self, events):
        self.events, self._pending = events, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self.events.write(json.dumps({"event": "stderr", "line": line}) + "\n")
        self.events.flush()
        return len(text)

    def flush(self) -> None:
        self.events.flush()

    def close_pending(self) -> None:
        if self._pending:
            self.write("\n")


def _warm_up() -> None:
    """Import what every command needs (torch, MONAI, the networks) before the first request."""
    import torch  # noqa: F401

    import neonet_core.neocls.models  # noqa: F401  (MONAI networks)
    import neonet_core.predict  # noqa: F401


def run_request(line: str, events) -> int:
    """Run one request line (see the module docstring); returns the command's exit code."""
    from neonet_core.cli.main import main

    try:
        request = json.loads(line)
        argv = request["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv) or not argv or argv[0] == "worker":
            raise ValueError
    except (ValueError, KeyError, TypeError):
        events.write(json.dumps({"event": "stderr", "line": f"neonet worker: error: not a request: {line.strip()[:200]}"}) + "\n")
        return 2
    from neonet_core.progress import JsonLinesOnly

    saved = sys.stdout, sys.stderr
    sys.stderr = _StderrEvents(events)
    sys.stdout = JsonLinesOnly(events, sys.stderr)  # e.g. argparse's --help text: a job's stderr line too
    try:
        return main(["--progress", "json", *argv])
    except SystemExit as stop:  # argparse errors and --help
        return stop.code if isinstance(stop.code, int) else 2
    finally:
        sys.stdout.close_pending()
        sys.stderr.close_pending()
        sys.stdout, sys.stderr = saved


def run(args) -> int:
    events = sys.stdout
    _warm_up()
    events.write(json.dumps({"event": "worker_ready", "pid": os.getpid()}) + "\n")  # JSON whatever --progress says
    events.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        code = run_request(line, events)
        events.write(json.dumps({"event": "job_end", "returncode": int(code)}) + "\n")
        events.flush()
        if code == 130:  # interrupted (SIGTERM): the worker ends with the command
            return 130
    return 0
