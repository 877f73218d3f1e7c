"""Progress reporting for long work: a tqdm bar on a terminal, JSON lines for machines, or nothing.

JSON mode prints one object per line on stdout, e.g.
``{"event": "progress", "stage": "phantom", "step": 3, "total": 128, "fraction": 0.0234, ...metrics}``
and ``{"event": "done", "stage": ...}`` when the work ends. The Slicer module reads these lines.
In JSON mode every stdout line is a JSON object: the CLI routes any other line to stderr
(:class:`JsonLinesOnly`). :func:`warn` says a warning in one line on stderr (and as a JSON event).
"""

from __future__ import annotations

import io
import json
import sys
import time

MODES = ("bar", "json", "none")
_default_mode = "bar"


def set_default_mode(mode: str) -> None:
    """Choose how every later :class:`Progress` reports (the CLI's ``--progress`` flag sets this)."""
    global _default_mode
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
    _default_mode = mode


def emit(event: str, **fields) -> None:
    """Print one JSON event line when in JSON mode (e.g. a stage's final metrics)."""
    if _default_mode == "json":
        print(json.dumps({"event": event, **fields}, default=float), flush=True)


def warn(message: str) -> None:
    """A warning as one line on stderr, and a ``{"event": "warning", "message": ...}`` line in JSON mode."""
    message = " ".join(str(message).split())
    emit("warning", message=message)
    print(f"neonet: warning: {message}", file=sys.stderr, flush=True)


class JsonLinesOnly(io.TextIOBase):
    """A stdout for JSON mode: lines that are JSON objects go to ``stdout``, every other line to ``stderr``."""

    def __init__(self, stdout, stderr):
        self.stdout, self.stderr, self._pending = stdout, stderr, ""

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self.stdout, "encoding", "utf-8")

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            (self.stdout if _is_json_object(line) else self.stderr).write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stdout.flush()
        self.stderr.flush()

    def close_pending(self) -> None:
        """Write out a last line that never got its newline."""
        if self._pending:
            self.write("\n")
        self.flush()


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


class Progress:
    """``with Progress(total, "stage") as p: p.update(1, loss=0.3)``."""

    def __init__(self, total: int | None, stage: str, mode: str | None = None):
        self.total, self.stage, self.step = total, stage, 0
        self.mode = mode or _default_mode
        self._bar = None
        self._start = time.perf_counter()
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, file=sys.stderr, dynamic_ncols=True, leave=False)

    def update(self, n: int = 1, **metrics) -> None:
        self.step += n
        if self._bar is not None:
            self._bar.update(n)
            if metrics:
                self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()})
        elif self.mode == "json":
            fraction = None if not self.total else round(self.step / self.total, 4)
            emit("progress", stage=self.stage, step=self.step, total=self.total, fraction=fraction, **metrics)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        emit("done", stage=self.stage, step=self.step, seconds=round(time.perf_counter() - self._start, 3))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
