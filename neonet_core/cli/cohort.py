"""``neonet cohort check manifest.csv``: list every problem in a cohort before training."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cohort",
        help="check a cohort manifest",
        description="Work with a cohort manifest (CSV: case_id,image,tumor_mask,anatomy_mask,label,patient_id; "
        "paths relative to the CSV).",
    )
    actions = parser.add_subparsers(dest="cohort_command", metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="read every file of every case and list all problems",
        description="Read every image and mask in the manifest and list every problem found (unreadable or "
        "truncated files, masks that do not overlap their image, empty tumour masks, anatomy labels outside "
        "1 liver, 2 bile_duct, 3 vessel, 4 tumour, bad labels, duplicate ids). Exit 0 when clean, 1 otherwise.",
    )
    check.add_argument("manifest", type=Path, help="the cohort manifest CSV")
    check.add_argument("--labels-required", action="store_true", help="every case needs a label (0 or 1), as for training")
    check.add_argument("--masks-required", action="store_true", help="every case needs a tumour mask, as for training or cropping")
    check.set_defaults(func=run)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run(args) -> int:
    from neonet_core.errors import InputError
    from neonet_core.manifest import check_cohort, read_manifest

    if not args.manifest.is_file():
        raise InputError(args.manifest, "manifest not found")
    problems = check_cohort(args.manifest, require_labels=args.labels_required, require_tumor_masks=args.masks_required)
    if problems:
        folder = args.manifest.resolve().parent
        rows = [(p.case_id or "-", _short(p.file, folder) or "-", p.problem) for p in problems]
        print(_table(("case", "file", "problem"), rows))
        cases_hit = len({p.case_id for p in problems if p.case_id})
        where = f" in {cases_hit} case(s)" if cases_hit else ""
        print(f"{args.manifest}: {len(problems)} problem(s){where}")
        return 1
    cases = read_manifest(args.manifest)
    positive = sum(c.label == 1 for c in cases)
    negative = sum(c.label == 0 for c in cases)
    unlabelled = len(cases) - positive - negative
    extra = f", {unlabelled} unlabelled" if unlabelled else ""
    print(f"{len(cases)} cases OK: {positive} positive, {negative} negative{extra}")
    return 0


def _short(file: str, folder: Path) -> str:
    """A file path relative to the manifest's folder when it lies below it."""
    if not file:
        return ""
    try:
        rel = os.path.relpath(file, folder)
    except ValueError:
        return file
    return file if rel.startswith("..") else rel


def _table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(2)]
    lines = [f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]}"]
    lines += [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    return "\n".join(lines)
