"""Reading and writing volumes. Every failure is an :class:`InputError` naming the file.

Readers return a :class:`Volume` (array ``[k, j, i]``, geometry in LPS) with ``metadata["path"]``.
Formats: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), a DICOM series
folder, and 3D Slicer segmentations (.seg.nrrd, read as a labelmap). The checks on what ITK reads
live in :mod:`neonet_core.io_checks`, DICOM series in :mod:`neonet_core.io_dicom`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import numpy as np

from neonet_core.errors import InputError
from neonet_core.fileio import atomic_path
from neonet_core.io_checks import (as_label_array, check_geometry, check_input, check_nifti_file, count_non_finite, itk_output,
                                   itk_problem, warn_itk)
from neonet_core.io_dicom import read_dicom_folder
from neonet_core.volume import Volume

WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd")
READABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SEG_SUFFIX = ".seg.nrrd"


# --- reading --------------------------------------------------------------------------------------
def read_volume(path: str | Path) -> Volume:
    """Read one single-channel 3D volume from a file or a DICOM series folder.

    A ``.seg.nrrd`` is read with :func:`read_segmentation` (a labelmap). A folder holding several
    DICOM series gives the series with most files, with a warning naming it and the others (also
    in ``metadata["dicom_other_series"]``). Raises :class:`InputError` for a missing, damaged or
    truncated file, anything but a regular file or a folder (a FIFO would block), an image that is
    not 3D, has several components per voxel or complex voxels, invalid spacing, and NaN/Inf voxels.
    """
    path = check_input(path, folder_ok=True)
    metadata: dict = {}
    if path.is_dir():
        image, metadata = read_dicom_folder(path)
    else:
        name = path.name.lower()
        if name.endswith(SEG_SUFFIX):
            return read_segmentation(path)
        if name.endswith(".dcm"):
            raise InputError(path, "a single DICOM file; give the folder that holds the whole series instead")
        if not name.endswith(READABLE_SUFFIXES):
            raise InputError(path, f"unknown volume format; use one of {', '.join(READABLE_SUFFIXES)}, {SEG_SUFFIX} or a DICOM folder")
        if name.endswith((".nii", ".nii.gz")):
            check_nifti_file(path)
        image = _sitk_read(path)
    return _to_volume(image, path, metadata)


def read_segmentation(path: str | Path) -> Volume:
    """Read a labelmap (uint8, or uint16 for labels above 255) with ``metadata["segment_names"]``.

    3D Slicer ``.seg.nrrd``: names come from the ``Segment{N}_Name`` header fields. Single-layer
    (3D) and multi-layer (4D, one layer per component) files are merged into one labelmap in segment
    order (a later segment overwrites an earlier one where they overlap). Label values are the
    file's ``Segment{N}_LabelValue`` when they are unique across segments, else 1..N in segment
    order. The grid is the file's own (Slicer crops it to the segments' extent; its ``space origin``
    already includes ``Segmentation_ReferenceImageExtentOffset``).

    Plain label volumes: integer values kept, names ``{v: "label_v"}``.
    """
    path = check_input(path, folder_ok=True)
    if path.is_file() and path.name.lower().endswith(SEG_SUFFIX):
        return _read_slicer_segmentation(path)
    volume = read_volume(path)
    array = as_label_array(volume.array, path)
    names = {int(v): f"label_{int(v)}" for v in np.unique(array) if v != 0}
    return Volume(array, volume.spacing, volume.origin, volume.direction, {**volume.metadata, "segment_names": names})


def read_mask_on_image(mask_path: str | Path, image: Volume) -> Volume:
    """Read a mask (labelmap) and put it on ``image``'s grid.

    Same grid: returned as read. Other grid overlapping the image in physical space: resampled
    (nearest neighbour; ``metadata["resampled"] = True``). No overlap: :class:`InputError`.
    """
    import neonet_core.resample as resample

    mask = read_segmentation(mask_path)
    if mask.same_grid(image):
        return mask
    if check_overlap(mask, image) <= 0.0:
        lo_m, hi_m = _bounds(mask)
        lo_i, hi_i = _bounds(image)
        raise InputError(
            mask_path,
            f"does not overlap the image {image.metadata.get('path', '(in memory)')} in physical space "
            f"(mask LPS box {_fmt(lo_m)}..{_fmt(hi_m)} mm, image box {_fmt(lo_i)}..{_fmt(hi_i)} mm); "
            "was it drawn on another scan?",
        )
    out = resample.resample_volume(mask, image, interpolation="nearest", default_value=0)
    return Volume(out.array, image.spacing, image.origin, image.direction, {**mask.metadata, "resampled": True})


def check_overlap(a: Volume, b: Volume) -> float:
    """Fraction (0..1) of ``a``'s box inside ``b``'s box, both boxes taken along ``b``'s axes.

    Exact for grids with parallel axes; for oblique pairs it is an upper bound, and 0 always means
    the two volumes share no physical point.
    """
    idx = b.physical_to_index(a.corners_physical())
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    b_lo, b_hi = -0.5 * np.ones(3), np.asarray(b.size_ijk, dtype=np.float64) - 0.5
    inter = np.clip(np.minimum(hi, b_hi) - np.maximum(lo, b_lo), 0.0, None)
    extent = np.maximum(hi - lo, 1e-12)
    return float(np.prod(inter / extent))


# --- writing --------------------------------------------------------------------------------------
def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` as NIfTI (.nii/.nii.gz) or NRRD (.nrrd), atomically and re-read. Returns the path."""
    path = check_writable(path)
    with atomic_path(path) as tmp:
        write_checked(volume.to_sitk(), tmp, path, compress, volume.array.nbytes)
    return path


def write_checked(image, tmp: Path, target: Path, compress: bool, nbytes: int) -> None:
    """``sitk.WriteImage`` into ``tmp``, then re-read it: ITK does not always report a failed write (a
    full disk leaves a truncated NIfTI). Failure on a nearly full disk: ``OSError(ENOSPC)``; else
    :class:`InputError` naming ``target``."""
    import SimpleITK as sitk

    problem = None
    with itk_output() as messages:
        try:
            sitk.WriteImage(image, str(tmp), compress)
        except RuntimeError as err:
            problem = itk_problem(err)
    try:
        if problem is None and tmp.name.lower().endswith((".nii", ".nii.gz")):
            check_nifti_file(tmp, values=False)  # streams the file: a short file or a cut gzip stream fails
        elif problem is None and tuple(_sitk_read(tmp).GetSize()) != tuple(image.GetSize()):
            problem = "its size differs after writing"
    except InputError as err:
        problem = err.problem
    if problem is None:
        warn_itk(target, messages)
        return
    if shutil.disk_usage(tmp.parent).free < nbytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    raise InputError(target, f"was not written completely ({problem})")


def check_writable(path: str | Path) -> Path:
    """``path`` when its suffix names a format :func:`write_volume` writes, else :class:`InputError`."""
    path = Path(path)
    if not path.name.lower().endswith(WRITABLE_SUFFIXES):
        raise InputError(path, f"cannot write this format; use one of {', '.join(WRITABLE_SUFFIXES)}")
    return path


def write_segmentation(labelmap: Volume, names: dict[int, str], path: str | Path) -> Path:
    """Write a labelmap as a single-layer 3D Slicer ``.seg.nrrd``, atomically. Returns the path.

    One segment per non-zero label in ``names`` or in the array (unnamed labels get "label_v").
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.name.lower().endswith(SEG_SUFFIX):
        raise InputError(path, f"a Slicer segmentation file name must end with {SEG_SUFFIX}")
    array = as_label_array(labelmap.array, path)
    labels = sorted({int(v) for v in np.unique(array) if v != 0} | {int(v) for v in names if int(v) != 0})
    image = labelmap.with_array(array).to_sitk()
    for n, label in enumerate(labels):
        name = names.get(label, f"label_{label}")
        where = np.argwhere(array == label)  # (k, j, i)
        extent = (
            " ".join(f"{lo} {hi}" for lo, hi in zip(where.min(0)[::-1], where.max(0)[::-1])) if len(where) else "0 -1 0 -1 0 -1"
        )
        color = _PALETTE[n % len(_PALETTE)]
        for key, value in {
            "Color": " ".join(f"{c:g}" for c in color),
            "ColorAutoGenerated": "0",
            "Extent": extent,
            "ID": f"Segment_{label}",
            "LabelValue": str(label),
            "Layer": "0",
            "Name": name,
            "NameAutoGenerated": "0",
            "Tags": "|",
        }.items():
            image.SetMetaData(f"Segment{n}_{key}", value)
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ConversionParameters", "")
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    with atomic_path(path) as tmp:
        write_checked(image, tmp, path, True, array.nbytes)
    return path


_PALETTE = [(0.86, 0.55, 0.39), (0.85, 0.4, 0.9), (0.0, 0.59, 0.81), (0.9, 0.86, 0.18), (0.5, 0.68, 0.5), (0.76, 0.2, 0.2)]


# --- helpers --------------------------------------------------------------------------------------
def _sitk_read(path: Path):
    import SimpleITK as sitk

    with itk_output() as messages:  # ITK's multi-line warnings become one line each
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as err:
            raise InputError(path, itk_problem(err)) from None
    warn_itk(path, messages)
    return image


def _to_volume(image, path: Path, metadata: dict, check_finite: bool = True) -> Volume:
    if "complex" in image.GetPixelIDTypeAsString():
        raise InputError(path, "has complex-valued voxels (raw or phase data?); NeoNet needs a real-valued magnitude image")
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise InputError(path, f"has {components} components per voxel (colour/vector image); NeoNet needs a single-channel 3D volume")
    size = "x".join(str(n) for n in image.GetSize())
    if image.GetDimension() != 3:
        raise InputError(path, f"is {image.GetDimension()}D (size {size}); NeoNet needs one 3D volume")
    if min(image.GetSize()) < 2:
        raise InputError(path, f"has a single slice (size {size}); NeoNet needs a 3D volume")
    check_geometry(image, path)
    volume = Volume.from_sitk(image, **metadata, path=str(path))
    if check_finite and volume.array.dtype.kind in "fc":
        bad = count_non_finite(volume.array)
        if bad:
            raise InputError(path, f"has {bad} NaN/Inf voxel(s) out of {volume.array.size}")
    return volume


def _read_slicer_segmentation(path: Path) -> Volume:
    import SimpleITK as sitk

    image = _sitk_read(path)
    fields: dict[int, dict[str, str]] = {}
    for key in image.GetMetaDataKeys():
        m = re.fullmatch(r"Segment(\d+)_(\w+)", key)
        if m:
            fields.setdefault(int(m.group(1)), {})[m.group(2)] = image.GetMetaData(key)
    layers = image.GetNumberOfComponentsPerPixel()
    if image.GetDimension() != 3:
        raise InputError(path, f"is a {image.GetDimension()}D segmentation without a layer ('list') axis; expected a 3D or layered 4D .seg.nrrd")
    check_geometry(image, path)
    array = sitk.GetArrayFromImage(image)  # (k, j, i) or (k, j, i, layers)
    if layers == 1:
        array = array[..., None]
    geometry = (image.GetSpacing(), image.GetOrigin(), np.asarray(image.GetDirection()).reshape(3, 3))
    if not fields:  # a plain labelmap saved with the .seg.nrrd name
        if layers != 1:
            raise InputError(path, f"has {layers} layers but no Segment{{N}}_* header fields")
        labels = as_label_array(array[..., 0], path)
        names = {int(v): f"label_{int(v)}" for v in np.unique(labels) if v != 0}
        return Volume(labels, *geometry, {"path": str(path), "segment_names": names})
    segments = []
    for n in sorted(fields):
        f = fields[n]
        try:
            value, layer = int(f.get("LabelValue", "1")), int(f.get("Layer", "0"))
        except ValueError:
            raise InputError(path, f"Segment{n} has a non-integer LabelValue/Layer") from None
        if value <= 0:
            raise InputError(path, f"Segment{n} has label value {value}; Slicer label values start at 1")
        if not 0 <= layer < layers:
            raise InputError(path, f"Segment{n} is on layer {layer} but the file has {layers} layer(s)")
        segments.append((f.get("Name", f"Segment_{n}"), value, layer))
    values = [v for _, v, _ in segments]
    unique = len(set(values)) == len(values)
    out_labels = values if unique else list(range(1, len(segments) + 1))
    out = np.zeros(array.shape[:3], dtype=np.uint8 if max(out_labels) <= 255 else np.uint16)
    names = {}
    for (name, value, layer), label in zip(segments, out_labels):
        out[array[..., layer] == value] = label
        names[int(label)] = name
    return Volume(out, *geometry, {"path": str(path), "segment_names": names})


def _bounds(volume: Volume):
    corners = volume.corners_physical()
    return corners.min(axis=0), corners.max(axis=0)


def _fmt(point) -> str:
    return "(" + ", ".join(f"{x:.1f}" for x in point) + ")"
