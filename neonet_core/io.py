"""Reading and writing volumes. Every failure is an :class:`InputError` naming the file."""

from __future__ import annotations

from pathlib import Path

from neonet_core.errors import InputError
from neonet_core.fileio import atomic_path
from neonet_core.volume import Volume

WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd")


def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` as NIfTI (.nii/.nii.gz) or NRRD (.nrrd), atomically. Returns the path."""
    import SimpleITK as sitk

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(WRITABLE_SUFFIXES):
        raise InputError(path, f"cannot write this format; use one of {', '.join(WRITABLE_SUFFIXES)}")
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume.to_sitk(), str(tmp), compress)
    return path
