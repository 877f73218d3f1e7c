"""The cohort manifest: one CSV row per case.

Columns: ``case_id,image,tumor_mask,anatomy_mask,label,patient_id`` (+ ``synthetic,source_case`` for
generated cases). ``case_id`` and ``image`` are required; ``tumor_mask`` is required when asked for
(training, cropping). Paths are relative to the CSV's folder (absolute paths allowed), UTF-8.
``label`` is 0 (PNI-) or 1 (PNI+), empty when unknown; ``patient_id`` defaults to ``case_id``.

:func:`read_manifest` does cheap checks (columns, ids, labels, files exist) and raises one
:class:`ManifestError` listing every problem. :func:`check_cohort` also reads every file.
Tumour masks: every non-zero voxel is tumour (:func:`load_case` returns 0/1); a mask holding other
values than 0 and 1 is reported by :func:`check_cohort` because it is often an anatomy mask in the
wrong column.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neonet_core.errors import InputError, ManifestError
from neonet_core.fileio import write_text_atomic
from neonet_core.io_checks import input_problem
from neonet_core.labels import ANATOMY_LABELS
from neonet_core.volume import Volume

COLUMNS = ("case_id", "image", "tumor_mask", "anatomy_mask", "label", "patient_id")
SYNTHETIC_COLUMNS = ("synthetic", "source_case")
REQUIRED_COLUMNS = ("case_id", "image")
_TRUE, _FALSE = {"1", "true", "yes"}, {"", "0", "false", "no"}


@dataclass(frozen=True)
class Case:
    """One row of a manifest; paths are absolute (resolved against the CSV's folder)."""

    case_id: str
    image: Path
    tumor_mask: Path | None
    anatomy_mask: Path | None
    label: int | None
    patient_id: str
    synthetic: bool = False
    source_case: str | None = None


class Problem(NamedTuple):
    """One problem found in a cohort: ``case_id`` ("" for the whole manifest), ``file`` ("" if none)."""

    case_id: str
    file: str
    problem: str


# --- reading ------------------------------------------------------------------------------------
def read_manifest(path: str | Path, require_labels: bool = False, require_tumor_masks: bool = False) -> list[Case]:
    """Read a manifest CSV with cheap checks; raises :class:`ManifestError` listing every problem."""
    cases, problems = _parse(Path(path), require_labels, require_tumor_masks)
    if problems:
        raise ManifestError(path, [tuple(p) for p in problems])
    return cases


def parse_manifest(path: str | Path, require_labels: bool = False, require_tumor_masks: bool = False) -> tuple[list[Case], list[Problem]]:
    """Lenient :func:`read_manifest`: (the rows without problems as cases, every problem found).

    For batch tools that go on with the good cases and report the bad ones. A problem with an empty
    ``case_id`` concerns the whole manifest (missing, not UTF-8, missing columns, no rows).
    """
    return _parse(Path(path), require_labels, require_tumor_masks)


def _parse(
    path: Path, require_labels: bool, require_tumor_masks: bool, row_names: list[str] | None = None
) -> tuple[list[Case], list[Problem]]:
    """Parse and check a manifest without reading images: (cases that parsed, problems).

    ``row_names``, when given, receives each row's case id ("row N" when empty), in row order.
    """
    path = Path(path)
    names = row_names if row_names is not None else []
    problem = input_problem(path, "manifest")
    if problem:
        return [], [Problem("", str(path), problem)]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        return [], [Problem("", str(path), f"not UTF-8 text ({err.reason} at byte {err.start}); save the CSV as UTF-8")]
    reader = csv.DictReader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as err:  # e.g. a field over csv.field_size_limit() (128 KiB)
        return [], [Problem("", str(path), f"line {reader.line_num}: not a readable CSV manifest ({err})")]
    header = [h.strip() for h in (csv.DictReader(io.StringIO(text)).fieldnames or [])]
    required = REQUIRED_COLUMNS + (("tumor_mask",) if require_tumor_masks else ()) + (("label",) if require_labels else ())
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(header) if header else "no header"
        return [], [Problem("", str(path), f"missing column(s) {', '.join(missing)} (found: {found})")]
    if not rows:
        return [], [Problem("", str(path), "no cases (the manifest has a header but no rows)")]

    folder = path.resolve().parent
    problems: list[Problem] = []
    cases: list[Case] = []
    ids = Counter((row.get("case_id") or "").strip() for row in rows)
    for n, raw in enumerate(rows, start=2):  # row 1 is the header
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        case_id = row.get("case_id", "")
        who = case_id or f"row {n}"
        names.append(who)
        before = len(problems)
        if None in raw:
            problems.append(Problem(who, "", f"row {n} has more values than the header has columns (quote paths that hold commas)"))
        if not case_id:
            problems.append(Problem(who, "", "empty case_id"))
        elif ids[case_id] > 1:
            problems.append(Problem(who, "", f"case_id appears {ids[case_id]} times (row {n}); case ids must be unique"))
        image = _path(row.get("image", ""), folder)
        if image is None:
            problems.append(Problem(who, "", "empty image path"))
        elif problem := input_problem(image, "image", folder_ok=True):
            problems.append(Problem(who, str(image), problem))
        masks = {}
        for column in ("tumor_mask", "anatomy_mask"):
            masks[column] = _path(row.get(column, ""), folder)
            if masks[column] is None:
                if column == "tumor_mask" and require_tumor_masks:
                    problems.append(Problem(who, "", "empty tumor_mask (a tumour mask is required here)"))
            elif problem := input_problem(masks[column], column):
                problems.append(Problem(who, str(masks[column]), problem))
        label = _label(row.get("label", ""))
        if label == "bad":
            problems.append(Problem(who, "", f"label {row['label']!r} is not 0 (PNI-) or 1 (PNI+)"))
        elif label is None and require_labels:
            problems.append(Problem(who, "", "empty label (0 or 1 is required for training)"))
        synthetic = row.get("synthetic", "").lower()
        if synthetic not in _TRUE | _FALSE:
            problems.append(Problem(who, "", f"synthetic {row['synthetic']!r} is not 0 or 1"))
        if len(problems) == before:
            cases.append(
                Case(
                    case_id=case_id,
                    image=image,
                    tumor_mask=masks["tumor_mask"],
                    anatomy_mask=masks["anatomy_mask"],
                    label=label,
                    patient_id=row.get("patient_id") or case_id,
                    synthetic=synthetic in _TRUE,
                    source_case=row.get("source_case") or None,
                )
            )
    return cases, problems


def _path(value: str, folder: Path) -> Path | None:
    if not value:
        return None
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else folder / p))


def _label(value: str):
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return "bad"
    return int(number) if number in (0.0, 1.0) else "bad"


# --- deep check ---------------------------------------------------------------------------------
def check_cohort(path: str | Path, require_labels: bool = False, require_tumor_masks: bool = False) -> list[Problem]:
    """Every problem in a cohort: the manifest checks plus reading every file of every case.

    Per case: each file reads as a 3D volume (no NaN/Inf), masks overlap the image (other grids are
    resampled), the tumour mask is non-empty on the image grid and holds only 0/1, anatomy labels
    are in :data:`labels.ANATOMY_LABELS`. Never stops at the first problem.
    """
    from neonet_core.progress import Progress

    names: list[str] = []
    cases, problems = _parse(Path(path), require_labels, require_tumor_masks, names)
    if cases:
        with Progress(len(cases), "cohort check") as progress:
            for case in cases:
                problems.extend(_check_case(case))
                progress.update(1)
    row = {name: n for n, name in reversed(list(enumerate(names)))}  # first row of each case id
    return sorted(problems, key=lambda p: row.get(p.case_id, -1))  # in manifest order (stable)


def _check_case(case: Case) -> list[Problem]:
    from neonet_core.io import read_mask_on_image, read_volume

    try:
        image = read_volume(case.image)
    except InputError as err:
        return [Problem(case.case_id, str(case.image), err.problem)]
    problems = []
    if case.tumor_mask is not None:
        try:
            mask = read_mask_on_image(case.tumor_mask, image)
            problems += [Problem(case.case_id, str(case.tumor_mask), p) for p in _tumour_problems(mask)]
        except InputError as err:
            problems.append(Problem(case.case_id, str(case.tumor_mask), err.problem))
    if case.anatomy_mask is not None:
        try:
            anatomy = read_mask_on_image(case.anatomy_mask, image)
            problem = _anatomy_problem(anatomy.array)
            if problem:
                problems.append(Problem(case.case_id, str(case.anatomy_mask), problem))
        except InputError as err:
            problems.append(Problem(case.case_id, str(case.anatomy_mask), err.problem))
    return problems


def _tumour_problems(mask: Volume) -> list[str]:
    problems = []
    values = np.unique(mask.array)
    other = [int(v) for v in values if v not in (0, 1)]
    if other:
        problems.append(f"tumour mask holds values other than 0 and 1: {other[:10]} (every non-zero voxel would count as tumour; is it an anatomy mask?)")
    if not np.any(mask.array):
        where = " on the image grid (it lies outside the image)" if mask.metadata.get("resampled") else ""
        problems.append(f"tumour mask is empty{where}")
    return problems


def _anatomy_problem(array: np.ndarray) -> str | None:
    bad = [int(v) for v in np.unique(array) if v != 0 and int(v) not in ANATOMY_LABELS]
    if bad:
        known = ", ".join(f"{k} {v}" for k, v in ANATOMY_LABELS.items())
        return f"anatomy labels {bad[:10]} are not NeoNet anatomy labels ({known}); relabel the mask"
    return None


# --- loading --------------------------------------------------------------------------------------
def load_case(case: Case) -> tuple[Volume, Volume | None, Volume | None]:
    """Read a case: (image, tumour mask uint8 0/1, anatomy uint8), both masks on the image grid.

    Raises :class:`InputError` naming the file and the case id (unreadable file, no overlap,
    anatomy labels outside :data:`labels.ANATOMY_LABELS`). An empty tumour mask is returned as is.
    """
    from neonet_core.io import read_mask_on_image, read_volume

    def fail(path, err: InputError):
        return InputError(path, f"case {case.case_id}: {err.problem}")

    try:
        image = read_volume(case.image)
    except InputError as err:
        raise fail(case.image, err) from None
    image.metadata["case_id"] = case.case_id
    tumour = anatomy = None
    if case.tumor_mask is not None:
        try:
            mask = read_mask_on_image(case.tumor_mask, image)
        except InputError as err:
            raise fail(case.tumor_mask, err) from None
        tumour = image.with_array((mask.array != 0).astype(np.uint8), path=str(case.tumor_mask))
    if case.anatomy_mask is not None:
        try:
            mask = read_mask_on_image(case.anatomy_mask, image)
        except InputError as err:
            raise fail(case.anatomy_mask, err) from None
        problem = _anatomy_problem(mask.array)
        if problem:
            raise InputError(case.anatomy_mask, f"case {case.case_id}: {problem}")
        anatomy = image.with_array(mask.array.astype(np.uint8), path=str(case.anatomy_mask))
    return image, tumour, anatomy


# --- writing --------------------------------------------------------------------------------------
def write_manifest(cases: list[Case], path: str | Path, overwrite: bool = False) -> Path:
    """Write ``cases`` as a manifest CSV, atomically, paths relative to the CSV's folder.

    Adds the ``synthetic,source_case`` columns when any case is synthetic. Refuses to replace an
    existing file unless ``overwrite``. Returns the path.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; choose a new file name (NeoNet never overwrites a manifest)")
    folder = path.resolve().parent
    columns = COLUMNS + (SYNTHETIC_COLUMNS if any(c.synthetic for c in cases) else ())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for c in cases:
        row = [
            c.case_id,
            _relative(c.image, folder),
            _relative(c.tumor_mask, folder),
            _relative(c.anatomy_mask, folder),
            "" if c.label is None else str(int(c.label)),
            c.patient_id,
        ]
        if "synthetic" in columns:
            row += ["1" if c.synthetic else "0", c.source_case or ""]
        writer.writerow(row)
    write_text_atomic(path, buffer.getvalue())
    return path


def _relative(p: Path | None, folder: Path) -> str:
    if p is None:
        return ""
    p = Path(p).absolute()
    try:
        return Path(os.path.relpath(p, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return str(p)
