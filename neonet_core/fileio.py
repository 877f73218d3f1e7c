"""Publishing outputs all-or-nothing: the one mechanism every command writes its outputs through.

- :func:`atomic_path` / :func:`atomic_paths`: files, written under temporary names beside their
  targets and published by rename. ``replace=False`` publishes with a hard link that fails when the
  target appeared meanwhile, so two runs can never both publish one file.
- :func:`publish_folder`: a whole output folder, staged in a private temporary folder beside it and
  published with one rename; a second run into the same folder is refused, never merged.

Both check their outputs and create the temporary places on entry, so a bad output path (a file
where a folder belongs, a read-only or full disk, a name too long) is refused before any work. On
any failure everything written is removed; OS errors become one line naming the output.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from neonet_core.errors import DiskFullError, InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Files and folders appear with the permissions a plain open()/mkdir() would give (mkstemp/mkdtemp make them private).
_FILE_MODE = 0o666 & ~_current_umask()
_DIR_MODE = 0o777 & ~_current_umask()
_FULL = (errno.ENOSPC, errno.EDQUOT)
_WORDS = {
    errno.ENOSPC: "disk full (no space left on the device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder",
    errno.ELOOP: "too many levels of symbolic links",
}
NEVER_OVERWRITES = "NeoNet never overwrites outputs"


def os_problem(err: OSError) -> str:
    """The problem an OSError describes, in a few words (e.g. "read-only file system")."""
    return _WORDS.get(err.errno) or " ".join(str(err.strerror or err).split())


def check_new_output(path: str | Path, folder: bool = False) -> Path:
    """Refuse an output that cannot be created new: it exists (for a folder: it is a file, or not
    empty), a part of its path is a file, or its name is too long. Returns ``path``."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError as err:
        raise InputError(path, os_problem(err)) from None
    if folder and stat.S_ISDIR(mode):
        with os.scandir(path) as entries:
            empty = not any(entries)
        if not empty:
            raise InputError(path, f"already exists and is not empty; choose a new folder ({NEVER_OVERWRITES})")
        return path
    if folder:
        raise InputError(path, "is a file, not a folder; give a new folder for the outputs")
    raise InputError(path, f"already exists; choose a new name ({NEVER_OVERWRITES})")


@contextmanager
def atomic_paths(targets, replace: bool = True, suffix: str | None = None):
    """Yield one temporary path beside each target; on success each is renamed onto its target.

    ``replace=False``: existing targets are refused on entry, and publishing never replaces a file
    that appeared meanwhile (if one did, the targets already published by this call are removed
    again). The temp names keep each target's full suffix (e.g. ``.nii.gz``) unless ``suffix`` is
    given, so writers that choose a format by extension still work. On any exception every temp
    file (and every folder this call created) is removed and the targets are untouched.
    """
    targets = [Path(t) for t in targets]
    temps: list[Path] = []
    created: list[Path] = []
    try:
        for target in targets:
            if not replace:
                check_new_output(target)
            created += _make_parents(target.parent)
            ending = suffix if suffix is not None else "".join(target.suffixes) or ".tmp"
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=ending[-64:], dir=target.parent)
            except OSError as err:
                raise InputError(target, os_problem(err)) from None
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        published: list[Path] = []
        try:
            for tmp, target in zip(temps, targets):
                os.chmod(tmp, _FILE_MODE)
                _publish(tmp, target, replace)
                published.append(target)
        except BaseException:
            for target in published if not replace else []:
                target.unlink(missing_ok=True)
            raise
    except BaseException as err:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        _remove_empty(created)
        _raise_as_output_error(err, targets[0] if len(targets) == 1 else targets[0].parent)


@contextmanager
def atomic_path(target: str | Path, suffix: str | None = None, replace: bool = True):
    """:func:`atomic_paths` for one file: yields its temporary path."""
    with atomic_paths([target], replace, suffix) as temps:
        yield temps[0]


def write_text_atomic(target: str | Path, text: str, replace: bool = True) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target, replace=replace) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextmanager
def publish_folder(out: str | Path, replace: bool = False):
    """``with publish_folder(out) as tmp:`` write the outputs into ``tmp``; on success ``tmp``
    becomes ``out`` with one rename.

    On entry ``out`` is checked (it must not exist, or be an empty folder) and the temporary folder is
    created beside it, so a bad ``out`` fails before any work. Publishing fails, and nothing is
    merged, when another run published ``out`` meanwhile. ``replace=True`` (only for outputs the
    caller knows it may replace): an existing ``out`` is moved aside, the new one renamed in, the old
    one removed. On any error the temporary folder and the folders this call created are removed.
    """
    out = Path(out)
    if replace:
        try:
            if out.exists() and not out.is_dir():
                raise InputError(out, "is a file, not a folder; give a new folder for the outputs")
        except OSError as err:
            raise InputError(out, os_problem(err)) from None
    else:
        check_new_output(out, folder=True)
    created: list[Path] = []
    tmp = None
    try:
        created = _make_parents(out.parent)
        # resolved, so that paths written relative to it stay right after the rename
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:64]}.partial-", dir=out.parent)).resolve()
        os.chmod(tmp, _DIR_MODE)
    except OSError as err:
        _remove_empty(created)
        raise InputError(out, os_problem(err)) from None
    try:
        yield tmp
        _publish_folder(tmp, out, replace)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        _raise_as_output_error(err, out)


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


# --- helpers --------------------------------------------------------------------------------------
def _publish(tmp: Path, target: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails when target exists: never replaces what another run published
    except FileExistsError:
        raise InputError(target, f"already exists (written meanwhile by another run?); {NEVER_OVERWRITES}") from None
    except OSError:  # a file system without hard links: the best we can do is check, then rename
        if os.path.lexists(target):
            raise InputError(target, f"already exists (written meanwhile by another run?); {NEVER_OVERWRITES}") from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


def _publish_folder(tmp: Path, out: Path, replace: bool) -> None:
    old = None
    if replace and out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name[:64]}.old-", dir=out.parent))
        os.rename(out, old)  # POSIX: onto the empty folder just made
    try:
        try:
            os.rename(tmp, out)  # POSIX: onto a missing or empty folder; fails on a non-empty one
        except OSError:
            if not (out.is_dir() and not any(out.iterdir())):
                raise
            out.rmdir()  # Windows will not rename onto an empty folder
            os.rename(tmp, out)
    except OSError as err:
        if old is not None:
            os.rename(old, out)
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise InputError(out, f"another run published into this folder meanwhile; {NEVER_OVERWRITES}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, deepest first (to remove them on failure)."""
    missing = []
    while not os.path.isdir(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    made = []
    try:
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            made.append(path)
    except OSError as err:
        _remove_empty(made[::-1])
        raise InputError(path, os_problem(err)) from None
    return made[::-1]


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            pass


def _raise_as_output_error(err: BaseException, out: Path):
    """Re-raise ``err``; a full disk (here or in an output inside this one) becomes one line naming ``out``."""
    if isinstance(err, DiskFullError) or (isinstance(err, OSError) and err.errno in _FULL):
        raise DiskFullError(out, f"{_WORDS[errno.ENOSPC]}; nothing was written") from None
    raise err
