"""Which compute devices this machine has, asked of PyTorch in a background process (importing torch in
Slicer's GUI process would freeze the panel for seconds). No Qt.

:func:`start_probe` returns a :class:`~NeoNetSlicerLib.runner.CLIRunner`; its one ``devices`` event
reads ``{"cuda": [GPU names], "mps": bool, "torch": version}``. MPS is only looked for on macOS.
The answer is kept for the rest of the session (:func:`known`): reopening the panel asks no more.
"""

from __future__ import annotations

from NeoNetSlicerLib.runner import CLIRunner, library_env, python_executable

PROBE = """
import json, sys
import torch
cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
mps = sys.platform == "darwin" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
print(json.dumps({"event": "devices", "cuda": cuda, "mps": bool(mps), "torch": torch.__version__}), flush=True)
"""


def start_probe(python: str | None = None) -> CLIRunner:
    """Start the probe process; poll the runner, then :func:`probe_result` reads its answer."""
    return CLIRunner().start([python or python_executable(), "-c", PROBE], library_env())


_KNOWN: list = []  # the last answer of a probe in this process


def probe_result(runner: CLIRunner) -> dict | None:
    """The ``devices`` event of a finished probe, or None (torch missing or failed: see the runner's log)."""
    found = [e for e in runner.result.events if e.get("event") == "devices"]
    if runner.result.ok and found:
        _KNOWN[:] = [found[-1]]
    return found[-1] if runner.result.ok and found else None


def known() -> dict | None:
    """What an earlier probe in this session found, or None."""
    return _KNOWN[0] if _KNOWN else None
