"""``neonet phantom``: write a synthetic PNI cohort (demo and test data) with its manifest."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic cholangiocarcinoma cohort with a learnable PNI label",
        description="Write a phantom cohort of hepatobiliary-phase-like T1 MRIs (int16 NIfTI), each with a "
        "tumour mask and an anatomy labelmap (1 liver, 2 bile_duct, 3 vessel, 4 tumour), plus manifest.csv "
        "and a README.md describing the PNI rule. PNI-positive cases show thin tumour extensions along nerve "
        "fibres; they are not in the masks. Every case depends only on (seed, case index, label): reruns are "
        "bit-identical, with any number of --workers. OUT must be new, empty, or a previous phantom made "
        "with the same parameters; nothing else is ever overwritten.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or the same phantom)")
    parser.add_argument("--cases", type=int, default=128, help="number of cases (default 128)")
    parser.add_argument("--positives", type=int, default=44, help="how many of them are PNI-positive (default 44)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--difficulty", type=float, default=0.5,
                        help="0 (easy) to 1 (hard): noise, bias, blur and subtler PNI extensions (default 0.5)")
    parser.add_argument("--size", type=int, nargs=3, default=[128, 128, 40], metavar=("I", "J", "K"),
                        help="voxels along i, j, k (default 128 128 40)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.5, 1.5, 3.0], metavar=("SI", "SJ", "SK"),
                        help="voxel spacing in mm (default 1.5 1.5 3); the anatomy is scaled to the field of view")
    parser.add_argument("--workers", type=int, default=1, help="processes generating cases in parallel (default 1)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.phantom import generate_cohort
    from neonet_core.progress import emit

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    manifest = generate_cohort(
        args.out, cases=args.cases, positives=args.positives, seed=args.seed, difficulty=args.difficulty,
        size=tuple(args.size), spacing=tuple(args.spacing), workers=args.workers,
    )
    emit("summary", stage="phantom", manifest=str(manifest), cases=args.cases, positives=args.positives)
    print(f"wrote {args.cases} phantom cases ({args.positives} PNI+) into {args.out}; manifest: {manifest}", file=sys.stderr)
    return 0
