"""``neonet phantom``: write a synthetic PNI cohort (demo and test data) with its manifest; with
``--background SCAN`` the same kind of lesions are painted into real scans instead."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SIZE = [128, 128, 40]
DEFAULT_SPACING = [1.5, 1.5, 3.0]


class _AddBackground(argparse.Action):
    """``--background SCAN``: one more background (a new list each parse, never the shared default)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest) or [])
        items.append({"path": Path(values), "site_mask": None, "site_labels": None})
        setattr(namespace, self.dest, items)


class _SiteOption(argparse.Action):
    """``--site-mask`` / ``--site-labels``: belong to the ``--background`` given just before them."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = getattr(namespace, "background") or []
        if not items:
            parser.error(f"{option_string} must follow the --background it belongs to")
        key = "site_mask" if self.dest == "site_mask" else "site_labels"
        if items[-1][key] is not None:
            parser.error(f"{option_string} given twice for --background {items[-1]['path']}")
        items[-1][key] = Path(values) if key == "site_mask" else tuple(values)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic cholangiocarcinoma cohort with a learnable PNI label (optionally on real scans)",
        description="Write a phantom cohort of hepatobiliary-phase-like T1 MRIs (int16 NIfTI), each with a "
        "tumour mask and an anatomy labelmap (1 liver, 2 bile_duct, 3 vessel, 4 tumour), plus manifest.csv "
        "and a README.md describing the PNI rule. PNI-positive cases show thin tumour extensions along nerve "
        "fibres; they are not in the masks. With --background SCAN (repeatable; NIfTI, NRRD, MetaImage or a "
        "DICOM folder, MR or CT) the tumour, nerve fibres and extensions are painted into randomly cropped "
        "copies of those scans instead, with intensities taken from the scan around the tumour site; "
        "PNI-negative cases then get look-alike decoys that do not touch the tumour. Masks share each "
        "image's grid (the scan's spacing and direction). Every case depends only on (seed, case index, "
        "label[, background]): reruns are bit-identical, with any number of --workers. OUT must be new, "
        "empty, or a previous phantom made with the same parameters; it is published whole or not at all.",
        epilog="example: neonet phantom --out cohort --cases 128 --positives 44 "
        "--background abdomen_mr.nii.gz --site-mask abdomen_mr_organs.nii.gz --site-labels 5 "
        "--background abdomen_ct_dicom/",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or the same phantom)")
    parser.add_argument("--cases", type=int, default=128, help="number of cases (default 128)")
    parser.add_argument("--positives", type=int, default=44, help="how many of them are PNI-positive (default 44)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--difficulty", type=float, default=0.5,
                        help="0 (easy) to 1 (hard): subtler PNI extensions (and, synthetic only, more noise, bias "
                        "and blur; on backgrounds, decoys closer to the tumour) (default 0.5)")
    parser.add_argument("--size", type=int, nargs=3, default=None, metavar=("I", "J", "K"),
                        help="synthetic only: voxels along i, j, k (default 128 128 40)")
    parser.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("SI", "SJ", "SK"),
                        help="synthetic only: voxel spacing in mm (default 1.5 1.5 3); the anatomy is scaled to the field of view")
    parser.add_argument("--workers", type=int, default=1, help="processes generating cases in parallel (default 1)")
    group = parser.add_argument_group("real backgrounds")
    group.add_argument("--background", action=_AddBackground, default=None, metavar="SCAN",
                       help="a real scan to paint the lesions into (repeat for several; cases use them in turn, "
                       "label by label)")
    group.add_argument("--site-mask", action=_SiteOption, dest="site_mask", metavar="MASK",
                       help="an organ labelmap for the --background just before it: tumours grow inside it "
                       "(default: anywhere in the body, in parenchyma-like tissue); the cases then get an "
                       "anatomy mask (1 host organ, 4 tumour)")
    group.add_argument("--site-labels", action=_SiteOption, dest="site_labels", type=int, nargs="+", metavar="L",
                       help="the labels of that --site-mask that may host the tumour (default: every non-zero "
                       "label), e.g. 5 for the liver in TotalSegmentator's numbering")
    group.add_argument("--crop", type=float, default=None,
                       help="largest fraction of each axis randomly cropped from each side of a background "
                       "(0 to 0.25; 0 keeps the scan's grid exactly; default 0.06)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.progress import emit

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.background:
        from neonet_core.phantom import BackgroundSpec, generate_background_cohort

        if args.size is not None or args.spacing is not None:
            raise ValueError("--size and --spacing are for the synthetic phantom; with --background each case keeps its scan's grid")
        specs = [BackgroundSpec(b["path"], b["site_mask"], b["site_labels"]) for b in args.background]
        manifest = generate_background_cohort(
            args.out, specs, cases=args.cases, positives=args.positives, seed=args.seed,
            difficulty=args.difficulty, crop=0.06 if args.crop is None else args.crop, workers=args.workers,
        )
        where = f" on {len(specs)} background scan(s)"
    else:
        from neonet_core.phantom import generate_cohort

        if args.crop is not None:
            raise ValueError("--crop is for --background scans; the synthetic phantom has no background to crop")

        manifest = generate_cohort(
            args.out, cases=args.cases, positives=args.positives, seed=args.seed, difficulty=args.difficulty,
            size=tuple(args.size or DEFAULT_SIZE), spacing=tuple(args.spacing or DEFAULT_SPACING), workers=args.workers,
        )
        where = ""
    emit("summary", stage="phantom", manifest=str(manifest), cases=args.cases, positives=args.positives)
    print(f"wrote {args.cases} phantom cases ({args.positives} PNI+){where} into {args.out}; manifest: {manifest}", file=sys.stderr)
    return 0
