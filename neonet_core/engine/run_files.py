"""The files of a run folder: ``*.safetensors`` weights and the ``history.jsonl`` log."""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from neonet_core.fileio import atomic_path, write_text_atomic


def save_weights(path: Path, networks: dict[str, nn.Module]) -> None:
    """Write ``networks`` atomically as ``<network>.<param>`` safetensors (read with :func:`load_weights`)."""
    from safetensors.torch import save_file

    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, net in networks.items()
        for key, value in net.state_dict().items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_weights(path: str | Path, networks: dict[str, nn.Module]) -> None:
    """Load ``<network>.<param>`` safetensors weights (as the trainer saves them) into ``networks``."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, net in networks.items():
        prefix = f"{name}."
        net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def append_history(path: Path, record: dict) -> None:
    """Append one line with a single O_APPEND write: a kill leaves the line whole or absent
    (a power cut or full disk can still tear it; :func:`read_history` and resume skip such a line)."""
    data = (json.dumps(record, default=float) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_history(path: str | Path) -> list[dict]:
    """The records of a run's ``history.jsonl``, skipping lines that are not whole JSON records
    (the torn last line of a killed run)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def truncate_history(path: Path, step: int) -> None:
    """Drop the history lines written after ``step`` (a killed run's tail), and any line a kill
    (or a full disk) left half-written."""
    if not path.exists():
        return
    kept = [record for record in read_history(path) if record["step"] <= step]
    write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))
