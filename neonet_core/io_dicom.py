"""Reading a DICOM series folder: the series with most files (named in a warning when there are several),
refusing FIFOs and other special files, unparsable files and uneven slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neonet_core.errors import InputError
from neonet_core.io_checks import input_problem, itk_output, itk_problem, warn_itk


def read_dicom_folder(path: Path):
    """The SimpleITK image of the folder's largest series and its metadata (series UID, file count, other series)."""
    import SimpleITK as sitk

    for entry in sorted(path.iterdir()):  # GDCM opens every file: a FIFO would block it forever
        problem = input_problem(entry, folder_ok=True)
        if problem:
            raise InputError(entry, f"{problem} (in the DICOM folder {path})")
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(path, "no DICOM series found in this folder (empty, or not DICOM files)")
    files = {uid: reader.GetGDCMSeriesFileNames(str(path), uid) for uid in series}
    _check_dicom_files_parsed(path, {Path(f).resolve() for names in files.values() for f in names})
    chosen = max(series, key=lambda uid: len(files[uid]))
    reader.SetFileNames(files[chosen])
    with itk_output() as messages:
        try:
            image = reader.Execute()
        except RuntimeError as err:
            raise InputError(path, f"DICOM series{' ' + chosen if chosen else ''}: {itk_problem(err)}") from None
    warn_itk(path, messages)
    _check_dicom_slice_positions(path, files[chosen], image)
    metadata = {"dicom_series_uid": chosen, "dicom_files": len(files[chosen])}
    others = [(uid, len(files[uid])) for uid in series if uid != chosen]
    if others:
        from neonet_core.progress import warn

        metadata["dicom_other_series"] = others
        listed = "; ".join(f"{uid} ({n} files)" for uid, n in others)
        warn(f"{path}: holds {len(series)} DICOM series; using the largest, {chosen} ({len(files[chosen])} files, "
             f"{_description(files[chosen][0])!r}); not used: {listed}. Give a folder holding one series to choose another")
    return image, metadata


def _description(file: str) -> str:
    """The SeriesDescription (0008|103e) of one DICOM file, "" when it has none."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(file))
    try:
        reader.ReadImageInformation()
        return reader.GetMetaData("0008|103e").strip() if reader.HasMetaDataKey("0008|103e") else ""
    except RuntimeError:
        return ""


def _check_dicom_files_parsed(folder: Path, parsed: set[Path]) -> None:
    """Refuse a folder holding a DICOM file (``DICM`` at byte 128) that GDCM could not parse: it
    would silently drop out of its series, leaving a gap."""
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.resolve() not in parsed:
            with open(f, "rb") as fh:
                head = fh.read(132)
            if head[128:132] == b"DICM":
                raise InputError(f, "is a DICOM file that cannot be read (damaged or truncated?); its slice would be missing from the series")


def _check_dicom_slice_positions(folder: Path, names, image) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing or duplicated slice): ITK would
    average the gaps and give every slice a wrong position."""
    import SimpleITK as sitk

    if len(names) < 3:
        return
    normal = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    positions = []
    for name in names:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(name))
        try:
            reader.ReadImageInformation()
            positions.append(float(np.dot(normal, reader.GetOrigin())))
        except RuntimeError as err:
            raise InputError(name, f"DICOM header cannot be read: {itk_problem(err)}") from None
    gaps = np.diff(positions)
    typical = float(np.median(np.abs(gaps)))
    worst = int(np.argmax(np.abs(np.abs(gaps) - typical)))
    if typical <= 0 or abs(abs(gaps[worst]) - typical) > max(0.01, 0.1 * typical):
        raise InputError(
            folder,
            f"DICOM slices are not evenly spaced: {abs(gaps[worst]):.3g} mm between {Path(names[worst]).name} and "
            f"{Path(names[worst + 1]).name}, {typical:.3g} mm elsewhere (a missing, damaged or duplicated slice?)",
        )
