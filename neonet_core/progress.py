"""Progress reporting for long work: a tqdm bar on a terminal, JSON lines for machines, or nothing.

JSON mode prints one object per line on stdout, e.g.
``{"event": "progress", "stage": "phantom", "step": 3, "total": 128, "fraction": 0.0234, ...metrics}``
and ``{"event": "done", "stage": ...}`` when the work ends. The Slicer module reads these lines.
"""

from __future__ import annotations

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
