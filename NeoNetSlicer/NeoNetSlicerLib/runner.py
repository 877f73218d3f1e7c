"""Run the ``neonet`` CLI in a background process and read its ``--progress json`` lines. No Qt.

The GUI polls :meth:`CLIRunner.poll` from a timer (it never blocks); scripts and tests call
:meth:`CLIRunner.wait`. The process gets its own process group (POSIX session; on Windows a new
process group, no console window), so :meth:`cancel` stops the CLI and every worker it spawned.
Its output is read as UTF-8 whatever the locale, and every line is kept (:attr:`RunResult.log`).
A CUDA out-of-memory failure is recognised from the CLI's one-line error (:func:`is_out_of_memory`)
so the caller can rerun on the CPU (:class:`NeoNetSlicerLib.jobs.Job` does, and reports a warning event).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

OOM_PATTERN = re.compile(r"out of memory|OutOfMemoryError|CUDNN_STATUS_ALLOC_FAILED|MPS backend out of memory", re.IGNORECASE)


def is_out_of_memory(text: str) -> bool:
    """True when ``text`` (stderr of a failed run) reports a GPU out-of-memory error."""
    return bool(OOM_PATTERN.search(text or ""))


def python_executable() -> str:
    """The Python that runs the CLI: Slicer's ``PythonSlicer`` launcher when present, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def cli_command(arguments: list[str], python: str | None = None) -> list[str]:
    """``[python, -m, neonet_core.cli.main, --progress, json, *arguments]``."""
    return [python or python_executable(), "-m", "neonet_core.cli.main", "--progress", "json", *map(str, arguments)]


def library_env(extra_paths: list[str | Path] = ()) -> dict:
    """The environment for the CLI: this process's, with the folder holding ``neonet_core`` first on PYTHONPATH."""
    import neonet_core

    paths = [str(Path(neonet_core.__file__).resolve().parent.parent), *map(str, extra_paths)]
    env = dict(os.environ)
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONIOENCODING"] = "utf-8"  # the child writes UTF-8 whatever the locale (Windows code pages)
    return env


@dataclass
class RunResult:
    """How a run ended: ``returncode`` (None while running), the events seen, stderr text, cancelled
    flag, and ``log``: every line the process wrote, stdout and stderr, in arrival order."""

    returncode: int | None = None
    events: list[dict] = field(default_factory=list)
    stderr: str = ""
    cancelled: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled

    @property
    def error_line(self) -> str:
        """The CLI's one-line error (last non-empty stderr line), or ''."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @property
    def out_of_memory(self) -> bool:
        return not self.ok and is_out_of_memory(self.stderr)


class PolledRun:
    """``wait`` for a run that has ``poll()``, ``finished``, ``cancel()`` and ``result`` (CLIRunner, WorkerRun)."""

    def wait(self, on_event=None, interval: float = 0.05, timeout: float | None = None) -> RunResult:
        """Block until the run ends, calling ``on_event(event)`` for each event. Returns ``result``."""
        start = time.monotonic()
        while not self.finished:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if not self.finished:
                if timeout is not None and time.monotonic() - start > timeout:
                    self.cancel()
                    raise TimeoutError(f"neonet did not finish within {timeout} s (cancelled)")
                time.sleep(interval)
        return self.result


class CLIRunner(PolledRun):
    """One background CLI process.

    ``start(command, env)`` launches it; ``poll()`` returns the new events (dicts from JSON lines on
    stdout; other stdout lines come as ``{"event": "log", "line": ...}``); ``finished`` and
    ``result`` tell how it ended; ``cancel()`` kills the whole process group.
    """

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.result = RunResult()
        self._queue: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self, command: list[str], env: dict | None = None, cwd: str | Path | None = None, stdin: bool = False) -> "CLIRunner":
        """Launch ``command``; ``stdin`` True keeps its input open for :meth:`send` (else it reads nothing)."""
        if self.process is not None:
            raise RuntimeError("this runner already started a process; make a new CLIRunner")
        self.command = [str(c) for c in command]
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=env,
            cwd=None if cwd is None else str(cwd),
            **_group_options(),
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def send(self, line: str) -> None:
        """Write one line to the process's input (started with ``stdin=True``)."""
        self.process.stdin.write(line.rstrip("\n") + "\n")
        self.process.stdin.flush()

    # --- reading -----------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            self.result.log.append(line)
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                event = {"event": "log", "line": line}
            self._queue.put(event)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)
            if line.strip():
                self.result.log.append("stderr: " + line.rstrip())

    def poll(self) -> list[dict]:
        """New events since the last call (never blocks). Sets ``result`` once the process has ended."""
        ended = self.process is not None and self.result.returncode is None and self.process.poll() is not None
        if ended:  # let the readers reach end-of-file so no line is lost
            for thread in self._threads:
                thread.join(timeout=5)
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        self.result.events.extend(events)
        if ended:
            self.result.stderr = "".join(self._stderr)
            self.result.returncode = self.process.returncode
        return events

    @property
    def finished(self) -> bool:
        return self.result.returncode is not None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    # --- cancel ------------------------------------------------------------------------------
    def cancel(self, grace: float = 0.5) -> None:
        """Stop the whole process group: a polite stop, then a forced one after ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.result.cancelled = True
        _stop_group(self.process.pid, force=False)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _stop_group(self.process.pid, force=True)
            self.process.wait()
        if os.name != "nt":
            _stop_group(self.process.pid, force=True)  # children that ignored the polite stop
        self.poll()


def _group_options() -> dict:
    """Popen options giving the process its own group: a POSIX session, or on Windows a new process
    group without a console window."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
    return {"start_new_session": True}


def _stop_group(pid: int, force: bool) -> None:
    """SIGTERM (or SIGKILL) to the process group; on Windows ``taskkill /T`` on the process tree."""
    if os.name == "nt":  # no process groups, no SIGKILL
        flags = ["/F"] if force else []
        subprocess.run(["taskkill", *flags, "/T", "/PID", str(pid)], capture_output=True,
                       creationflags=subprocess.CREATE_NO_WINDOW)
        return
    try:
        os.killpg(pid, signal.SIGKILL if force else signal.SIGTERM)
    except ProcessLookupError:
        pass


def set_device_argument(arguments: list[str], device: str) -> list[str]:
    """``arguments`` with ``--device X`` replaced (or added) by ``--device device``."""
    out, skip = [], False
    for arg in arguments:
        if skip:
            skip = False
            continue
        if arg == "--device":
            skip = True
            continue
        if str(arg).startswith("--device="):
            continue
        out.append(arg)
    return [*out, "--device", device]


def needs_cpu_fallback(result: RunResult, device: str) -> bool:
    """True when a run on a GPU failed for lack of GPU memory (so running again on the CPU may work)."""
    return device != "cpu" and result.out_of_memory


def fallback_warning(device: str) -> dict:
    return {"event": "warning", "message": f"GPU out of memory on device {device!r}: running again on the CPU (slower)."}
