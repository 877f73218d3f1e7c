"""``neonet predict``: p(PNI) for one case or every case of a manifest, with ROI and attention map.

One case (``--image [--mask]``), into ``--out``::

    result.json        probability, label at the bundle's threshold, threshold, uncertainty (TTA spread),
                       ROI (LPS), tumour source (user | neoseg), bundle name/version, library version,
                       timings per stage (s)
    roi.mrk.json       the crop box as a 3D Slicer markups ROI
    attention.nii.gz   Grad-CAM attention in [0, 1] on the input image grid (0 outside the ROI)
    tumour.nii.gz      the tumour mask NeoSeg found (only when no --mask was given)

Batch (``--manifest``): the same files in ``OUT/<case_id>/`` and ``OUT/predictions.csv`` with one
row per case; a case that fails is reported in its row and the others go on (exit code 1).
Existing outputs are never replaced.
"""

from __future__ import annotations

from neonet_core.device import resolve_device

import csv
import io
import json
import sys
from pathlib import Path

OUTPUTS = ("result.json", "roi.mrk.json", "attention.nii.gz", "tumour.nii.gz")
CSV_COLUMNS = ("case_id", "status", "probability", "label", "class_name", "threshold", "uncertainty", "tumour_source", "error")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict perineural invasion for a case (or a manifest) with a model bundle",
        description="Localise the tumour (your --mask wins; otherwise the bundle's NeoSeg finds it), cut the "
        "tumour-localised ROI crop, and classify it with the bundle's classifier. Writes result.json "
        "(probability, label at the bundle's decision threshold, uncertainty from test-time flips, ROI, "
        "timings), the ROI as a Slicer .mrk.json and the attention map (Grad-CAM) as a NIfTI on the input "
        "grid. --manifest predicts every case and writes predictions.csv; failing cases are reported there.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder or .zip (from `neonet train all`)")
    parser.add_argument("--image", type=Path, help="the MRI volume (NIfTI, NRRD, MHA or a DICOM folder)")
    parser.add_argument("--mask", type=Path, help="optional tumour mask (every non-zero voxel is tumour); without it NeoSeg localises")
    parser.add_argument("--manifest", type=Path, help="predict every case of this manifest CSV instead of --image")
    parser.add_argument("--out", type=Path, required=True, help="output folder (existing outputs are never replaced)")
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.add_argument("--no-tta", action="store_true", help="skip test-time flips (faster; uncertainty is then 0)")
    parser.set_defaults(func=run)


def _refuse_existing(folder: Path) -> None:
    from neonet_core.errors import InputError

    for name in OUTPUTS:
        if (folder / name).exists():
            raise InputError(folder / name, "already exists; choose a new --out folder (NeoNet never overwrites outputs)")


def write_outputs(prediction, folder: Path, case_id: str | None = None) -> Path:
    """Write result.json, roi.mrk.json, attention.nii.gz (+ tumour.nii.gz for NeoSeg) into ``folder``."""
    from neonet_core.fileio import write_text_atomic
    from neonet_core.io import write_volume
    from neonet_core.markups import write_roi_mrk_json

    folder.mkdir(parents=True, exist_ok=True)
    write_roi_mrk_json(prediction.roi, folder / "roi.mrk.json")
    write_volume(prediction.attention, folder / "attention.nii.gz")
    if prediction.tumour_source != "user":
        write_volume(prediction.tumour, folder / "tumour.nii.gz")
    result = {"case_id": case_id, **prediction.to_dict()} if case_id else prediction.to_dict()
    write_text_atomic(folder / "result.json", json.dumps(result, indent=2) + "\n")
    return folder / "result.json"


def run(args) -> int:
    from neonet_core.errors import InputError
    from neonet_core.predict import load_predictor

    if (args.manifest is None) == (args.image is None):
        raise InputError(None, "give either --image (optionally with --mask) or --manifest")
    if args.manifest is not None and args.mask is not None:
        raise InputError(args.mask, "--mask goes with --image; a manifest names each case's mask in its tumor_mask column")
    predictor = load_predictor(args.bundle, resolve_device(args.device))
    if args.image is not None:
        return _one(args, predictor)
    return _batch(args, predictor)


def _one(args, predictor) -> int:
    from neonet_core.io import read_mask_on_image, read_volume

    _refuse_existing(args.out)
    image = read_volume(args.image)
    mask = read_mask_on_image(args.mask, image) if args.mask is not None else None
    prediction = predictor.predict(image, mask, tta=not args.no_tta)
    prediction.timings = {"load": predictor.load_s, **prediction.timings}
    path = write_outputs(prediction, args.out)
    print(f"p(PNI) = {prediction.probability:.3f} +/- {prediction.uncertainty:.3f} -> {prediction.class_name} "
          f"(threshold {prediction.threshold:.3f}, tumour from {prediction.tumour_source}); wrote {path}")
    return 0


def _batch(args, predictor) -> int:
    from neonet_core.batch import run_cases, safe_case_name
    from neonet_core.errors import InputError
    from neonet_core.fileio import write_text_atomic
    from neonet_core.manifest import load_case, read_manifest

    table = args.out / "predictions.csv"
    if table.exists():
        raise InputError(table, "already exists; choose a new --out folder (NeoNet never overwrites outputs)")
    cases = read_manifest(args.manifest)
    for case in cases:
        _refuse_existing(args.out / safe_case_name(case.case_id))

    def predict(case) -> dict:
        image, tumour, _ = load_case(case)
        p = predictor.predict(image, tumour, tta=not args.no_tta)
        write_outputs(p, args.out / safe_case_name(case.case_id), case.case_id)
        return {"probability": f"{p.probability:.6f}", "label": p.label, "class_name": p.class_name,
                "threshold": f"{p.threshold:.6f}", "uncertainty": f"{p.uncertainty:.6f}", "tumour_source": p.tumour_source}

    rows = run_cases(cases, predict, "predict")
    failed = sum(row["status"] == "failed" for row in rows.values())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({"case_id": case_id, **row} for case_id, row in rows.items())
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(table, buf.getvalue())
    print(f"predicted {len(cases) - failed}/{len(cases)} cases; wrote {table}")
    if failed:
        print(f"neonet predict: {failed} case(s) failed; see the error column of {table}", file=sys.stderr)
    return 1 if failed else 0
