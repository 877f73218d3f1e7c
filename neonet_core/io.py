"""Reading and writing volumes. Every failure is an :class:`InputError` naming the file.

Readers return a :class:`Volume` (array ``[k, j, i]``, geometry in LPS) with ``metadata["path"]``.
Formats: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd), a DICOM series
folder, and 3D Slicer segmentations (.seg.nrrd, read as a labelmap).
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from neonet_core.errors import InputError
from neonet_core.fileio import atomic_path
from neonet_core.volume import Volume

WRITABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd")
READABLE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
SEG_SUFFIX = ".seg.nrrd"


# --- reading --------------------------------------------------------------------------------------
def read_volume(path: str | Path) -> Volume:
    """Read one single-channel 3D volume from a file or a DICOM series folder.

    A ``.seg.nrrd`` is read with :func:`read_segmentation` (a labelmap). A folder holding several
    DICOM series gives the series with most files; the others are listed in
    ``metadata["dicom_other_series"]``. Raises :class:`InputError` for a missing, damaged or
    truncated file, an image that is not 3D or has several components per voxel, invalid spacing,
    and NaN/Inf voxels.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    metadata: dict = {}
    if path.is_dir():
        image, metadata = _read_dicom_folder(path)
    else:
        name = path.name.lower()
        if name.endswith(SEG_SUFFIX):
            return read_segmentation(path)
        if name.endswith(".dcm"):
            raise InputError(path, "a single DICOM file; give the folder that holds the whole series instead")
        if not name.endswith(READABLE_SUFFIXES):
            raise InputError(path, f"unknown volume format; use one of {', '.join(READABLE_SUFFIXES)}, {SEG_SUFFIX} or a DICOM folder")
        if name.endswith((".nii", ".nii.gz")):
            _check_nifti_file(path)
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
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_file() and path.name.lower().endswith(SEG_SUFFIX):
        return _read_slicer_segmentation(path)
    volume = read_volume(path)
    array = _as_label_array(volume.array, path)
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
    """Write ``volume`` as NIfTI (.nii/.nii.gz) or NRRD (.nrrd), atomically. Returns the path."""
    import SimpleITK as sitk

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(WRITABLE_SUFFIXES):
        raise InputError(path, f"cannot write this format; use one of {', '.join(WRITABLE_SUFFIXES)}")
    with atomic_path(path) as tmp:
        sitk.WriteImage(volume.to_sitk(), str(tmp), compress)
    return path


def write_segmentation(labelmap: Volume, names: dict[int, str], path: str | Path) -> Path:
    """Write a labelmap as a single-layer 3D Slicer ``.seg.nrrd``, atomically. Returns the path.

    One segment per non-zero label in ``names`` or in the array (unnamed labels get "label_v").
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.name.lower().endswith(SEG_SUFFIX):
        raise InputError(path, f"a Slicer segmentation file name must end with {SEG_SUFFIX}")
    array = _as_label_array(labelmap.array, path)
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
        sitk.WriteImage(image, str(tmp), True)
    return path


_PALETTE = [(0.86, 0.55, 0.39), (0.85, 0.4, 0.9), (0.0, 0.59, 0.81), (0.9, 0.86, 0.18), (0.5, 0.68, 0.5), (0.76, 0.2, 0.2)]


# --- helpers --------------------------------------------------------------------------------------
def _sitk_read(path: Path):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InputError(path, _itk_problem(err)) from None


def _itk_problem(err: Exception) -> str:
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


def _check_nifti_file(path: Path) -> None:
    """Catch what ITK's NIfTI reader lets through: truncated data, zero/negative/NaN pixdim, and
    NaN/Inf voxels (ITK reads them as 0)."""
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
            dtype = _NIFTI_FLOATS.get(int(datatype))
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


def _read_dicom_folder(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(path))
    if not series:
        raise InputError(path, "no DICOM series found in this folder (empty, or not DICOM files)")
    files = {uid: reader.GetGDCMSeriesFileNames(str(path), uid) for uid in series}
    _check_dicom_files_parsed(path, {Path(f).resolve() for names in files.values() for f in names})
    chosen = max(series, key=lambda uid: len(files[uid]))
    reader.SetFileNames(files[chosen])
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InputError(path, f"DICOM series{' ' + chosen if chosen else ''}: {_itk_problem(err)}") from None
    _check_dicom_slice_positions(path, files[chosen], image)
    metadata = {"dicom_series_uid": chosen, "dicom_files": len(files[chosen])}
    others = [(uid, len(files[uid])) for uid in series if uid != chosen]
    if others:
        metadata["dicom_other_series"] = others
    return image, metadata


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
            raise InputError(name, f"DICOM header cannot be read: {_itk_problem(err)}") from None
    gaps = np.diff(positions)
    typical = float(np.median(np.abs(gaps)))
    worst = int(np.argmax(np.abs(np.abs(gaps) - typical)))
    if typical <= 0 or abs(abs(gaps[worst]) - typical) > max(0.01, 0.1 * typical):
        raise InputError(
            folder,
            f"DICOM slices are not evenly spaced: {abs(gaps[worst]):.3g} mm between {Path(names[worst]).name} and "
            f"{Path(names[worst + 1]).name}, {typical:.3g} mm elsewhere (a missing, damaged or duplicated slice?)",
        )


def _geometry_problem(spacing, direction) -> str | None:
    spacing = np.asarray(spacing, dtype=np.float64)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        return f"invalid voxel spacing {tuple(spacing.tolist())} (must be finite and > 0)"
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        return "invalid direction matrix (not finite, or its axes are not independent)"
    return None


def _to_volume(image, path: Path, metadata: dict, check_finite: bool = True) -> Volume:
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise InputError(path, f"has {components} components per voxel (colour/vector image); NeoNet needs a single-channel 3D volume")
    size = "x".join(str(n) for n in image.GetSize())
    if image.GetDimension() != 3:
        raise InputError(path, f"is {image.GetDimension()}D (size {size}); NeoNet needs one 3D volume")
    if min(image.GetSize()) < 2:
        raise InputError(path, f"has a single slice (size {size}); NeoNet needs a 3D volume")
    problem = _geometry_problem(image.GetSpacing(), image.GetDirection())
    if problem:
        raise InputError(path, problem)
    volume = Volume.from_sitk(image, **metadata, path=str(path))
    if check_finite and volume.array.dtype.kind in "fc":
        bad = count_non_finite(volume.array)
        if bad:
            raise InputError(path, f"has {bad} NaN/Inf voxel(s) out of {volume.array.size}")
    return volume


def count_non_finite(array: np.ndarray, slab_bytes: int = 1 << 24) -> int:
    """Number of NaN/Inf values in a float/complex ``array`` (0 for other dtypes), counted slab by
    slab along the first axis so no full-size boolean temporary is made."""
    if array.dtype.kind not in "fc":
        return 0
    if array.ndim == 0:
        return int(not np.isfinite(array))
    step = max(1, slab_bytes // max(1, array[0].nbytes))
    return sum(int(array[k : k + step].size - np.count_nonzero(np.isfinite(array[k : k + step]))) for k in range(0, len(array), step))


def _as_label_array(array: np.ndarray, path: Path) -> np.ndarray:
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
    problem = _geometry_problem(image.GetSpacing(), image.GetDirection())
    if problem:
        raise InputError(path, problem)
    array = sitk.GetArrayFromImage(image)  # (k, j, i) or (k, j, i, layers)
    if layers == 1:
        array = array[..., None]
    geometry = (image.GetSpacing(), image.GetOrigin(), np.asarray(image.GetDirection()).reshape(3, 3))
    if not fields:  # a plain labelmap saved with the .seg.nrrd name
        if layers != 1:
            raise InputError(path, f"has {layers} layers but no Segment{{N}}_* header fields")
        labels = _as_label_array(array[..., 0], path)
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
