"""Headless NeoNet batch prediction through the Slicer module's Logic.

In Slicer (no window)::

    Slicer --no-main-window --python-script NeoNetSlicer/Scripts/batch_predict.py -- \\
        --manifest cohort.csv --bundle Resources/Models/neonet-demo --out results.csv

or with plain Python and the ``slicer-core`` wheel (same Logic, same MRML nodes)::

    python NeoNetSlicer/Scripts/batch_predict.py --input-dir scans/ --bundle B --out results.csv

``--manifest``: the cohort CSV (``case_id,image[,tumor_mask,...]``; no tumour mask -> NeoSeg).
``--input-dir``: every volume file in the folder; ``<name>_tumour.*``, ``<name>_tumor.*`` or
``<name>.seg.nrrd`` beside it is taken as its tumour mask. A case that fails is reported in the
results (status ``failed`` and the error) and the batch goes on. Exit code: 0 all cases predicted,
1 a case (or the batch itself) failed, 2 bad arguments or NeoNet's Python packages not installed;
every error ends the script with its code, so a headless Slicer never stays running.
``--outputs DIR`` also saves each case's nodes through Slicer's storage nodes (.nrrd, .seg.nrrd,
.mrk.json, .csv). Nothing existing is overwritten.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
for candidate in (HERE.parents[1], HERE.parents[2]):  # the module folder (NeoNetSlicerLib), the repository (neonet_core)
    if str(candidate) not in sys.path:
        sys.path.insert(0, str(candidate))

COLUMNS = ["case_id", "status", "error", "probability", "label", "threshold", "uncertainty", "tumour_source",
           "bundle", "bundle_version", "seconds"]
VOLUME_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd", ".nhdr")
MASK_MARKERS = ("_tumour", "_tumor", "_mask", "_label", "_seg")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="batch_predict.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="cohort manifest CSV (paths relative to it)")
    source.add_argument("--input-dir", type=Path, help="folder of volume files (tumour masks beside them, optional)")
    parser.add_argument("--bundle", default=None, help="model bundle folder or .zip (default: the demo bundle)")
    parser.add_argument("--out", type=Path, required=True, help="results CSV to write (must not exist)")
    parser.add_argument("--outputs", type=Path, default=None, help="also save every case's output nodes in this folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--no-tta", action="store_true", help="no test-time augmentation (faster, no uncertainty)")
    return parser.parse_args(argv)


def cases_from_input_dir(folder: Path) -> list[tuple[str, Path, Path | None]]:
    """(case id, image, tumour mask or None) for each volume file of ``folder`` (masks found by name)."""
    if not folder.is_dir():
        raise SystemExit(f"batch_predict: error: {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    from NeoNetSlicerLib.scene import file_stem

    stems = {p: file_stem(p) for p in files}
    images = [p for p in files if not p.name.lower().endswith(".seg.nrrd") and not stems[p].lower().endswith(MASK_MARKERS)]
    cases = []
    for image in images:
        stem = stems[image]
        masks = [p for p in files if p is not image and (stems[p] in {stem + m for m in MASK_MARKERS} or p.name == stem + ".seg.nrrd")]
        cases.append((stem, image, masks[0] if masks else None))
    return cases


def cases_from_manifest(path: Path):
    """((case id, image, mask) rows that parsed, [(case id, problem)] rows that did not)."""
    from neonet_core.manifest import parse_manifest

    cases, problems = parse_manifest(path)
    whole = [p for p in problems if not p.case_id]
    if whole:
        raise SystemExit(f"batch_predict: error: {whole[0].file}: {whole[0].problem}")
    bad = [(p.case_id, f"{p.file + ': ' if p.file else ''}{p.problem}") for p in problems]
    return [(c.case_id, c.image, c.tumor_mask) for c in cases], bad


def write_results(rows: list[dict], path: Path) -> None:
    from neonet_core.fileio import write_text_atomic

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def predict_case(logic, context, case_id: str, image: Path, mask: Path | None, args) -> dict:
    """Load one case into the scene, predict, save its outputs if asked, and remove its nodes again."""
    from NeoNetSlicerLib.scene import load_segmentation, load_volume

    start = time.perf_counter()
    added = []
    try:
        volume = load_volume(context, image, case_id)
        added.append(volume)
        segmentation = None
        if mask is not None:
            segmentation = load_segmentation(context, mask, f"{case_id} tumour")
            added.append(segmentation)
        out = logic.predict(volume, segmentation, bundle=args.bundle, device=args.device, tta=not args.no_tta, caseId=case_id)
        added += [out.tumourNode, out.roiNode, out.attentionNode]
        if args.outputs is not None:
            logic.save_outputs(out, args.outputs)
        return {
            "case_id": case_id, "status": "ok", "error": "", "probability": f"{out.probability:.6f}", "label": out.label,
            "threshold": f"{out.threshold:.6f}", "uncertainty": "" if out.uncertainty is None else f"{out.uncertainty:.6f}",
            "tumour_source": out.tumour_source, "bundle": out.bundle_name, "bundle_version": out.bundle_version,
            "seconds": f"{time.perf_counter() - start:.3f}",
        }
    finally:
        for node in added:  # keep memory flat over a long batch; the results table stays
            if node is not None and node.GetScene() is not None:
                context.scene.RemoveNode(node)


def missing_packages() -> list[str]:
    """What this Python lacks to run NeoNet (a too old Python, or packages), or []."""
    from NeoNetSlicerLib.dependencies import TORCH_REQUIREMENT, missing, read_requirements
    from NeoNetSlicerLib.panel import python_problem

    problem = python_problem()
    return [problem] if problem else missing([TORCH_REQUIREMENT, *read_requirements()])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--":  # Slicer --python-script script.py -- <arguments>
        argv = argv[1:]
    args = parse_args(argv)
    if args.out.exists():
        print(f"batch_predict: error: {args.out}: already exists; NeoNet never overwrites a file", file=sys.stderr)
        return 2
    absent = missing_packages()
    if absent:
        print(f"batch_predict: error: not installed in this Python: {', '.join(absent)} "
              "(open the NeoNet module once in Slicer to install them)", file=sys.stderr)
        return 2
    from NeoNetSlicerLib.logic import NeoNetLogic
    from NeoNetSlicerLib.scene import current_scene

    if args.manifest is not None:
        cases, bad = cases_from_manifest(args.manifest)
    else:
        cases, bad = cases_from_input_dir(args.input_dir), []
    context = current_scene()
    logic = NeoNetLogic(context.scene, context.app_logic)
    rows = [{"case_id": case_id, "status": "failed", "error": problem} for case_id, problem in bad]
    total = len(cases)
    for n, (case_id, image, mask) in enumerate(cases, start=1):
        try:
            row = predict_case(logic, context, case_id, image, mask, args)
            print(f"[{n}/{total}] {case_id}: p(PNI) = {row['probability']} -> {row['label']}", flush=True)
        except Exception as err:  # one bad case must not stop the batch
            row = {"case_id": case_id, "status": "failed", "error": " ".join(f"{type(err).__name__}: {err}".split())}
            print(f"[{n}/{total}] {case_id}: FAILED: {row['error']}", file=sys.stderr, flush=True)
        rows.append(row)
        write_results(rows, args.out)  # after every case: an interrupted batch keeps what it did
    if not rows:
        print("batch_predict: error: no cases found", file=sys.stderr)
        return 2
    write_results(rows, args.out)
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows) - failed} case(s) predicted, {failed} failed; results in {args.out}")
    return 1 if failed else 0


def run(argv=None) -> int:
    """:func:`main` that never raises: any error becomes one line on stderr and an exit code."""
    try:
        return main(argv)
    except SystemExit as err:  # argparse and our own fatal errors
        if isinstance(err.code, str):
            print(err.code, file=sys.stderr)
            return 2
        return err.code if isinstance(err.code, int) else 0
    except BaseException as err:  # noqa: BLE001  (anything: a headless Slicer must still exit)
        print(f"batch_predict: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1


def _exit(code: int) -> None:
    try:
        import slicer

        app = getattr(slicer, "app", None)
    except ImportError:
        app = None
    if app is not None:  # inside Slicer: leave the application with this code
        slicer.util.exit(code)
    else:
        sys.exit(code)


if __name__ == "__main__":
    _exit(run())
