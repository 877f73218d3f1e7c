"""Checks on what ITK reads, each failure an :class:`InputError` naming the file.

The input gate (:func:`check_input`: only regular files and folders are ever opened), NIfTI
headers and data (what ITK's reader lets through), geometry, NaN/Inf voxels, label values, and ITK's
multi-line exceptions and warnings turned into one line.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import struct
import sys
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from neonet_core.errors import InputError


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def input_problem(path: str | Path, what: str = "file", folder_ok: bool = False) -> str | None:
    """Why ``path`` cannot be read as an input, or None. Only ``os.stat``: nothing is opened, so a
    FIFO or device (which would block or never end) is refused before it can hang the reader."""
    from neonet_core.fileio import os_problem

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{what} not found"
    except OSError as err:
        return os_problem(err)
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return None
    if stat.S_ISDIR(mode):
        return f"is a folder, not a {what} file"
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file; NeoNet reads only regular files{' or a DICOM folder' if folder_ok else ''}"


def check_input(path: str | Path, what: str = "file", folder_ok: bool = False) -> Path:
    """``path`` when :func:`input_problem` finds nothing wrong, else :class:`InputError`."""
    problem = input_problem(path, what, folder_ok)
    if problem:
        raise InputError(path, problem)
    return Path(path)


@contextmanager
def itk_output():
    """Capture what ITK prints on stderr meanwhile (multi-line warnings, NIfTI write errors); yields a
    list that holds its messages, one line each, when the block ends."""
    messages: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to tidy
        yield messages
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield messages
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            messages += itk_warning_messages(capture.read().decode("utf-8", "replace"))


def warn_itk(path: Path, messages: list[str]) -> None:
    """Repeat ITK's messages about ``path`` as one warning line each."""
    from neonet_core.progress import warn

    for message in messages:
        message = message[len(str(path)):].lstrip(" :") if message.startswith(str(path)) else message
        warn(f"{path}: {message}")


def itk_warning_messages(text: str) -> list[str]:
    """The messages of ITK's ``WARNING: In <file>, line N`` / ``Class (0x..): message`` blocks (other text as is)."""
    messages = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("WARNING: In ")]
        if lines:
            messages.append(re.sub(r"^\w+ \(0x[0-9a-f]+\):\s*", "", " ".join(lines)))
    return list(dict.fromkeys(messages))


def itk_problem(err: Exception) -> str:
    """A one-line problem from a multi-line ITK exception."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    reason = re.sub(r"^\[nrrd\]\s*", "", lines[-1]) if lines else type(err).__name__
    reason = re.sub(r"^ITK ERROR: \w+\(0x[0-9a-f]+\):\s*", "", reason)
    if "spacing" in reason.lower():
        return f"has zero or invalid voxel spacing ({reason})"
    if "Unable to determine ImageIO reader" in reason:
        return "is not a readable image file (damaged, or not the format its name says)"
    if "No such file or directory" in reason:  # MetaImage's words for a short data block
        return "cannot be read: the image data is missing or incomplete (truncated file?)"
    return f"cannot be read (damaged or truncated file?): {reason}"


def check_geometry(image, path: Path) -> None:
    """Refuse a SimpleITK ``image`` whose spacing (3,) or direction (9,) makes no usable grid."""
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {tuple(spacing.tolist())} (must be finite and > 0)")
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise InputError(path, "invalid direction matrix (not finite, or its axes are not independent)")


def count_non_finite(array: np.ndarray, slab_bytes: int = 1 << 24) -> int:
    """Number of NaN/Inf values in a float/complex ``array`` (0 for other dtypes), counted slab by
    slab along the first axis so no full-size boolean temporary is made."""
    if array.dtype.kind not in "fc":
        return 0
    if array.ndim == 0:
        return int(not np.isfinite(array))
    step = max(1, slab_bytes // max(1, array[0].nbytes))
    return sum(int(array[k : k + step].size - np.count_nonzero(np.isfinite(array[k : k + step]))) for k in range(0, len(array), step))


def as_label_array(array: np.ndarray, path: Path) -> np.ndarray:
    """A label array as uint8 (uint16 when labels exceed 255); refuses fractional/negative/huge values."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise InputError(path, "has non-integer values; a mask must hold integer labels")
    if array.size and array.min() < 0:
        raise InputError(path, f"has negative label value {array.min()}; labels must be 0..65535")
    top = int(array.max()) if array.size else 0
    if top > 65535:
        raise InputError(path, f"has label value {top}; labels must be 0..65535")
    return array.astype(np.uint8 if top <= 255 else np.uint16, copy=False)


def check_nifti_file(path: Path, values: bool = True) -> None:
    """Catch what ITK's NIfTI reader lets through: truncated data, zero/negative/NaN pixdim, and
    (with ``values``) NaN/Inf voxels (ITK reads them as 0)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = f.read(540)
            if len(header) < 348:
                raise InputError(path, "cannot be read: file too short for a NIfTI header (truncated?)")
            endian, dims, datatype, bitpix, pixdim, vox_offset = _nifti_header_fields(header, path)
            if not 1 <= dims[0] <= 7 or bitpix <= 0 or np.any(dims[1 : 1 + dims[0]] < 1):
                raise InputError(path, f"not a valid NIfTI header (dim {dims.tolist()}, bitpix {bitpix})")
            voxels = int(np.prod(dims[1 : 1 + dims[0]], dtype=np.int64))
            expected = int(vox_offset) + voxels * bitpix // 8
            dtype = _NIFTI_FLOATS.get(int(datatype)) if values else None
            dtype = None if dtype is None else np.dtype(dtype).newbyteorder(endian)
            size, bad, carry = 0, 0, b""
            chunk = header
            while chunk:
                start = max(0, int(vox_offset) - size)
                size += len(chunk)
                if dtype is not None and start < len(chunk):
                    data = carry + chunk[start:]
                    usable = len(data) - len(data) % dtype.itemsize
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:usable], dtype=dtype))))
                    carry = data[usable:]
                chunk = f.read(1 << 22)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(path, f"cannot be read: damaged or truncated compressed data ({err})") from None
    if size < expected:
        raise InputError(path, f"truncated: the image data needs {expected} bytes but the file holds {size}")
    n = min(int(dims[0]), 3)
    if any(not np.isfinite(p) or p <= 0 for p in pixdim[1 : 1 + n]):
        raise InputError(path, f"invalid voxel spacing in the NIfTI header: pixdim {list(map(float, pixdim[1 : 1 + n]))} (must be > 0)")
    if bad:
        raise InputError(path, f"has {bad} NaN/Inf voxel(s) out of {voxels}")


_NIFTI_FLOATS = {16: np.float32, 64: np.float64, 32: np.float32, 1792: np.float64}  # complex: pairs of floats


def _nifti_header_fields(header: bytes, path: Path):
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0]
        if size == 348:  # NIfTI-1
            dims = np.array(struct.unpack(endian + "8h", header[40:56]), dtype=np.int64)
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            pixdim = struct.unpack(endian + "8f", header[76:108])
            vox_offset = struct.unpack(endian + "f", header[108:112])[0]
            datatype = struct.unpack(endian + "h", header[70:72])[0]
            return endian, dims, datatype, bitpix, pixdim, max(vox_offset, 352.0)
        if size == 540 and len(header) >= 540:  # NIfTI-2
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = np.array(struct.unpack(endian + "8q", header[16:80]), dtype=np.int64)
            pixdim = struct.unpack(endian + "8d", header[104:168])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            return endian, dims, datatype, bitpix, pixdim, vox_offset
    raise InputError(path, "not a NIfTI file (bad header size field)")
