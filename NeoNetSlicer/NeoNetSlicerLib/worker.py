"""A warm ``neonet worker`` process for the panel's jobs: torch and MONAI are imported once. No Qt.

A cold ``neonet`` process spends seconds importing torch and MONAI before any work; the panel keeps
one worker (``neonet worker``, see :mod:`neonet_core.cli.worker`) alive between jobs and starts it
ahead of the first click (:meth:`WarmWorker.start`). :meth:`WarmWorker.submit` returns a
:class:`WorkerRun`, which a :class:`NeoNetSlicerLib.jobs.Job` polls exactly like a
:class:`~NeoNetSlicerLib.runner.CLIRunner` (same events, ``result``, ``cancel``). One command runs at
a time; while the worker is busy (or after it died) a command runs in its own cold process.
Cancel stops the worker's whole process group; the next job starts a new worker.
"""

from __future__ import annotations

import json

from NeoNetSlicerLib.runner import CLIRunner, PolledRun, RunResult, cli_command, library_env


class WorkerRun(PolledRun):
    """One command run by a :class:`WarmWorker`; the same interface as :class:`CLIRunner`."""

    def __init__(self, worker: "WarmWorker", arguments: list[str]):
        self.worker, self.arguments = worker, arguments
        self.command = [*cli_command(arguments, worker.python), f"(in the warm worker, pid {worker.pid})"]
        self.result = RunResult()
        self._events: list[dict] = []
        self._stderr: list[str] = []

    @property
    def pid(self) -> int | None:
        return self.worker.pid

    @property
    def process(self):
        """The worker's ``subprocess.Popen``."""
        return self.worker.runner.process

    @property
    def finished(self) -> bool:
        return self.result.returncode is not None

    def poll(self) -> list[dict]:
        """New events since the last call (never blocks); sets ``result`` once the command has ended."""
        self.worker.pump()
        events, self._events = self._events, []
        self.result.events.extend(events)
        return events

    def cancel(self, grace: float = 0.5) -> None:
        """Stop the command: the worker's whole process group goes (the next job starts a new worker)."""
        if self.finished:
            return
        self.result.cancelled = True
        self.worker.runner.cancel(grace)
        self.worker.pump()

    # --- fed by the worker -------------------------------------------------------------------
    def _take(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "stderr":
            line = str(event.get("line", ""))
            self._stderr.append(line + "\n")
            self.result.log.append("stderr: " + line)
        elif kind == "job_end":
            self._end(int(event.get("returncode", 1)))
        else:
            self.result.log.append(json.dumps(event) if kind != "log" else event.get("line", ""))
            self._events.append(event)

    def _end(self, returncode: int, stderr: str = "") -> None:
        self.result.stderr = "".join(self._stderr) + stderr
        self.result.returncode = returncode


class WarmWorker:
    """One ``neonet worker`` process (``python``, ``env``: as for :func:`cli_command` / :func:`library_env`)."""

    def __init__(self, python: str | None = None, env: dict | None = None):
        self.python, self.env = python, env or library_env()
        self.runner: CLIRunner | None = None
        self.ready = False
        self.current: WorkerRun | None = None

    @property
    def pid(self) -> int | None:
        return None if self.runner is None else self.runner.pid

    @property
    def alive(self) -> bool:
        return self.runner is not None and not self.runner.finished

    @property
    def idle(self) -> bool:
        return self.current is None

    def start(self) -> "WarmWorker":
        """Start the process (imports run in it while the user works); a running worker is kept."""
        if not self.alive:
            self.runner = CLIRunner().start(cli_command(["worker"], self.python), self.env, stdin=True)
            self.ready, self.current = False, None
        return self

    def submit(self, arguments: list[str]):
        """Run ``neonet <arguments>``: in the worker when it is idle, else in a cold process of its own."""
        self.pump()
        if not self.idle:
            return CLIRunner().start(cli_command(arguments, self.python), self.env)
        self.start()
        run = WorkerRun(self, [str(a) for a in arguments])
        self.current = run
        self.runner.send(json.dumps({"argv": run.arguments}))
        return run

    def pump(self) -> None:
        """Route the worker's new events to the command running in it; end that command if the worker died."""
        if self.runner is None:
            return
        for event in self.runner.poll():
            if event.get("event") == "worker_ready":
                self.ready = True
            elif self.current is not None:
                self.current._take(event)
                if self.current.finished:
                    self.current = None
        if self.runner.finished and self.current is not None:
            self.current._end(self.runner.result.returncode if self.runner.result.returncode else 1, self.runner.result.stderr)
            self.current.result.cancelled = self.current.result.cancelled or self.runner.result.cancelled
            self.current = None

    def stop(self) -> None:
        """End the worker's process group (a command running in it is cancelled)."""
        if self.alive:
            self.runner.cancel()
        self.pump()

    cancel = stop  # the Widget's cleanup cancels whatever runs


_SHARED: list[WarmWorker] = []


def shared_worker() -> WarmWorker:
    """This Slicer session's worker (one per process, kept while the panel is reopened)."""
    if not _SHARED:
        _SHARED.append(WarmWorker())
    return _SHARED[0]
