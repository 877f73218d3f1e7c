"""Atomic file writing: a temp file in the target folder, then ``os.replace``. Never a half-written file."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files appear with the permissions a plain open() would give (mkstemp alone makes them 0600).
_FILE_MODE = 0o666 & ~_current_umask()


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None):
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    The temp name keeps ``target``'s full suffix (e.g. ``.nii.gz``) so writers that choose a format
    by extension still work. On any exception the temp file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(target.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temp files that :func:`atomic_path` left in ``folder`` when a process was killed mid-write.

    Only names of the form ``.<target>.<random><suffix>`` directly in ``folder`` are touched.
    """
    removed = []
    for path in Path(folder).glob(".*.*"):
        if path.is_file() and path.name.count(".") >= 2:
            path.unlink()
            removed.append(path)
    return removed
