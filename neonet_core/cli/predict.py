"""``neonet predict``: p(PNI) for one case or every case of a manifest, with ROI and attention map.

One case (``--image [--mask]``), into ``--out``::

    result.json        probability, label at the bundle's threshold, threshold, uncertainty (TTA spread),
                       ROI (LPS), tumour source (user | neoseg), assessable (+ the reasons when not),
                       bundle name/version, library version, timings per stage (s)
    roi.mrk.json       the crop box as a 3D Slicer markups ROI
    attention.nii.gz   Grad-CAM attention in [0, 1] on the input image grid (0 outside the ROI)
    tumour.nii.gz      the tumour mask NeoSeg found (only when no --mask was given)

Batch (``--manifest``): the same files in ``OUT/<case_id>/`` and ``OUT/predictions.csv`` with one
row per case; a case that fails is reported in its row and the others go on (exit code 1).

``--out`` must be new (or an empty folder). Everything is written into a private temporary folder
beside it and published with one rename when complete (:func:`neonet_core.fileio.publish_folder`):
a failure (a full disk too) leaves nothing, and of two runs into one ``--out`` only one succeeds.
With ``--progress json`` a single case reports the stages load, localise, crop, classify, attention.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from neonet_core.device import resolve_device

OUTPUTS = ("result.json", "roi.mrk.json", "attention.nii.gz", "tumour.nii.gz")
STAGES = ("load", "localise", "crop", "classify", "attention")
CSV_COLUMNS = ("case_id", "status", "probability", "label", "class_name", "threshold", "uncertainty", "tumour_source",
               "assessable", "not_assessable_reasons", "error")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict perineural invasion for a case (or a manifest) with a model bundle",
        description="Localise the tumour (your --mask wins; otherwise the bundle's NeoSeg finds it), cut the "
        "tumour-localised ROI crop, and classify it with the bundle's classifier. Writes result.json "
        "(probability, label at the bundle's decision threshold, uncertainty from test-time flips, ROI, "
        "whether the input could be assessed, timings), the ROI as a Slicer .mrk.json and the attention map "
        "(Grad-CAM) as a NIfTI on the input grid. --manifest predicts every case and writes predictions.csv; "
        "failing cases are reported there. --out must be a new folder: the outputs appear all at once, or not at all.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder or .zip (from `neonet train all`)")
    parser.add_argument("--image", type=Path, help="the MRI volume (NIfTI, NRRD, MHA or a DICOM folder)")
    parser.add_argument("--mask", type=Path, help="optional tumour mask (every non-zero voxel is tumour); without it NeoSeg localises")
    parser.add_argument("--manifest", type=Path, help="predict every case of this manifest CSV instead of --image")
    parser.add_argument("--out", type=Path, required=True, help="new output folder (never merged into or overwritten)")
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.add_argument("--no-tta", action="store_true", help="skip test-time flips (faster; uncertainty is then 0)")
    parser.set_defaults(func=run)


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
    from neonet_core.fileio import publish_folder

    if (args.manifest is None) == (args.image is None):
        raise InputError(None, "give either --image (optionally with --mask) or --manifest")
    if args.manifest is not None and args.mask is not None:
        raise InputError(args.mask, "--mask goes with --image; a manifest names each case's mask in its tumor_mask column")
    device = resolve_device(args.device)
    with publish_folder(args.out) as staging:  # --out is checked and claimed before any work
        if args.image is not None:
            prediction = _one(args, device, staging)
        else:
            rows = _batch(args, device, staging)
    if args.image is not None:
        print(f"{summary(prediction)}; wrote {args.out / 'result.json'}")
        return 0
    failed = sum(row["status"] == "failed" for row in rows.values())
    table = args.out / "predictions.csv"
    print(f"predicted {len(rows) - failed}/{len(rows)} cases; wrote {table}")
    if failed:
        print(f"neonet predict: {failed} case(s) failed; see the error column of {table}", file=sys.stderr)
    return 1 if failed else 0


def summary(prediction) -> str:
    """The one-line result: probability, label, threshold, tumour source, and NOT ASSESSABLE with the reasons."""
    text = (f"p(PNI) = {prediction.probability:.3f} +/- {prediction.uncertainty:.3f} -> {prediction.class_name} "
            f"(threshold {prediction.threshold:.3f}, tumour from {prediction.tumour_source})")
    if not prediction.assessable:
        text += f"; NOT ASSESSABLE: {'; '.join(prediction.not_assessable_reasons)}"
    return text


def _one(args, device, staging: Path):
    from neonet_core.io import read_mask_on_image, read_volume
    from neonet_core.predict import load_predictor
    from neonet_core.progress import Progress

    with Progress(len(STAGES), "predict") as progress:
        predictor = load_predictor(args.bundle, device)
        image = read_volume(args.image)
        mask = read_mask_on_image(args.mask, image) if args.mask is not None else None
        progress.update(1, part="load")
        prediction = predictor.predict(image, mask, tta=not args.no_tta, on_stage=lambda part: progress.update(1, part=part))
    prediction.timings = {"load": predictor.load_s, **prediction.timings}
    write_outputs(prediction, staging)
    return prediction


def _batch(args, device, staging: Path) -> dict:
    from neonet_core.batch import case_folder_names, run_cases
    from neonet_core.fileio import publish_folder, write_text_atomic
    from neonet_core.manifest import load_case, read_manifest
    from neonet_core.predict import load_predictor

    cases = read_manifest(args.manifest)
    folders = case_folder_names([case.case_id for case in cases], args.manifest)
    predictor = load_predictor(args.bundle, device)

    def predict(case) -> dict:
        image, tumour, _ = load_case(case)
        p = predictor.predict(image, tumour, tta=not args.no_tta)
        with publish_folder(staging / folders[case.case_id]) as folder:  # each case's files all or none
            write_outputs(p, folder, case.case_id)
        return {"probability": f"{p.probability:.6f}", "label": p.label, "class_name": p.class_name,
                "threshold": f"{p.threshold:.6f}", "uncertainty": f"{p.uncertainty:.6f}", "tumour_source": p.tumour_source,
                "assessable": int(p.assessable), "not_assessable_reasons": "; ".join(p.not_assessable_reasons)}

    rows = run_cases(cases, predict, "predict")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({"case_id": case_id, **row} for case_id, row in rows.items())
    write_text_atomic(staging / "predictions.csv", buf.getvalue())
    return rows
