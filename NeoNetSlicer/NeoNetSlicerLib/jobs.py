"""Background jobs: MRML nodes -> files -> ``neonet`` CLI process -> files -> MRML nodes. No Qt.

A :class:`Job` is polled by the Widget's timer (``job.poll()`` never blocks) or run to the end with
``job.wait()``. It writes its inputs into a private work folder, runs the CLI with
``--progress json`` (in the panel's warm worker process when there is one, see
:mod:`NeoNetSlicerLib.worker`), reruns on the CPU after a GPU out-of-memory failure (a ``warning``
event says so), and on success calls its ``load`` step, which fills NeoNet's output nodes. Cancel kills the
whole process group; nothing is loaded then. Every line the CLI wrote is kept (:meth:`Job.log_text`);
the work folder is removed after a success or a cancel, and kept after a failure (the log says where).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from NeoNetSlicerLib.runner import (
    CLIRunner,
    cli_command,
    fallback_warning,
    library_env,
    needs_cpu_fallback,
    set_device_argument,
)


class JobError(RuntimeError):
    """The CLI failed: ``str(err)`` is its one-line error."""


class Job:
    """One CLI run with its work folder. ``load(workdir) -> result`` runs in the caller's thread at the end."""

    def __init__(self, name: str, arguments: list, device: str, load, workdir: Path, command=cli_command, env=None,
                 worker=None):
        """``worker``: a :class:`NeoNetSlicerLib.worker.WarmWorker` running the CLI (``command`` is then
        not used); None: each run is a new ``command(arguments)`` process."""
        self.name, self.arguments, self.device, self._load = name, [str(a) for a in arguments], device, load
        self.workdir = Path(workdir)
        self._command, self._env, self._worker = command, env or library_env(), worker
        self.runner: CLIRunner | None = None
        self.runs: list[CLIRunner] = []  # the first run, then the CPU rerun after a GPU ran out of memory
        self.result = None
        self.error: str | None = None
        self.warnings: list[str] = []
        self.started = time.perf_counter()
        self.done = False

    def start(self) -> "Job":
        self._launch(self.device)
        return self

    def _launch(self, device: str) -> None:
        arguments = set_device_argument(self.arguments, device)
        if self._worker is not None:
            self.runner = self._worker.submit(arguments)
        else:
            self.runner = CLIRunner().start(self._command(arguments), self._env)
        self.runs.append(self.runner)
        self.current_device = device

    def poll(self) -> list[dict]:
        """New events; when the process ends, load the results (or set ``error``) and mark ``done``."""
        if self.done:
            return []
        events = self.runner.poll()
        if self.runner.finished:
            run = self.runner.result
            if needs_cpu_fallback(run, self.current_device):
                warning = fallback_warning(self.current_device)
                self.warnings.append(warning["message"])
                events.append(warning)
                self._launch("cpu")
                return events
            self._finish(run)
            events.append({"event": "finished", "ok": self.error is None, "error": self.error, "cancelled": run.cancelled})
        return events

    def _finish(self, run) -> None:
        self.done = True
        if run.cancelled:
            self.error = "cancelled"
        elif run.returncode != 0:
            self.error = run.error_line or f"neonet exited with code {run.returncode}"
        else:
            try:
                self.result = self._load(self.workdir)
            except Exception as err:  # a bad output file: report it as the job's error line
                self.error = f"{type(err).__name__}: {err}"
        if self.error is None or self.error == "cancelled":
            self.cleanup()

    def log_text(self) -> str:
        """The whole job as text: each command line, every line it wrote, how it ended, the work folder."""
        parts = []
        for runner in self.runs:
            parts += [f"$ {' '.join(runner.command)}", *runner.result.log]
            if runner.result.returncode is not None:
                parts.append(f"(exit code {runner.result.returncode}{', cancelled' if runner.result.cancelled else ''})")
        if self.done:
            parts.append(f"Job {self.name}: " + ("done" if self.error is None else self.error))
            if self.workdir.exists():
                parts.append(f"Work folder kept for inspection: {self.workdir}")
        return "\n".join(parts)

    def wait(self, on_event=None, interval: float = 0.05):
        """Run to the end (blocking); returns the loaded result or raises :class:`JobError`."""
        while not self.done:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if not self.done:
                time.sleep(interval)
        if self.error:
            raise JobError(self.error)
        return self.result

    def cancel(self) -> None:
        if self.runner is not None and not self.done:
            self.runner.cancel()
            self._finish(self.runner.result)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def new_workdir(prefix: str = "neonet-slicer-") -> Path:
    """A private temporary folder for one job's files (removed when the job succeeds or is cancelled)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def describe(event: dict) -> str:
    """A short status line for a progress event (e.g. 'predict 3/8 (38%)', 'predict: classify 4/5 (80%)')."""
    kind = event.get("event")
    if kind == "progress":
        total = event.get("total")
        step = event.get("step")
        fraction = event.get("fraction")
        where = f"{step}/{total}" if total else f"{step}"
        pct = f" ({100 * fraction:.0f}%)" if fraction is not None else ""
        part = f": {event['part']}" if event.get("part") else ""
        return f"{event.get('stage', 'working')}{part} {where}{pct}"
    if kind == "done":
        return f"{event.get('stage', '')} done"
    if kind == "warning":
        return f"Warning: {event.get('message', '')}"
    if kind == "log":
        return event.get("line", "")
    if kind == "finished":
        return "Done." if event.get("ok") else ("Cancelled." if event.get("cancelled") else f"Failed: {event.get('error')}")
    return kind or ""
