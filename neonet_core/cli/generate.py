"""``neonet generate``: synthetic TLCR patches of one class from a NeoGen bundle (+ a quality report)."""

from __future__ import annotations

from pathlib import Path

from neonet_core.device import resolve_device


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate synthetic patches of one class with NeoGen",
        description="Generate --count synthetic TLCR patches of class --label, each conditioned on the tumour and "
        "anatomy masks of a real case of that class from --manifest (cycled in a seeded order, with random flips "
        "and 90-degree axial rotations of the masks). Writes OUT/images/*.nii.gz, the conditioning masks "
        "OUT/masks/*.nii.gz on the source case's TLCR patch grid, and OUT/manifest.csv (synthetic=1, "
        "source_case=<case>). --report adds OUT/report/report.md with PNG figures: real vs synthetic gallery, mask "
        "adherence, diversity, realism (Frechet distance on our own autoencoder's features) and class fidelity.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder or .zip with autoencoder, ldm and controlnet")
    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest whose cases of --label give the masks")
    parser.add_argument("--label", type=int, choices=(0, 1), required=True, help="class to generate: 1 = PNI+, 0 = PNI-")
    parser.add_argument("--count", type=int, required=True, help="number of synthetic patches")
    parser.add_argument("--out", type=Path, required=True, help="new output folder (published whole when done; never merged into)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same patches)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the bundle's, 30 for rectified flow)")
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.add_argument("--report", action="store_true", help="also write the quality report (Markdown + PNG) to OUT/report")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.errors import InputError
    from neonet_core.fileio import publish_folder
    from neonet_core.manifest import read_manifest, write_manifest
    from neonet_core.neogen.generate import generate_cases, load_neogen, plan_synthetic

    if args.count < 1:
        raise InputError(None, f"--count must be at least 1, got {args.count}")
    with publish_folder(args.out) as staging:  # --out checked and claimed before any work; published whole
        cases = [c for c in read_manifest(args.manifest, require_tumor_masks=True) if not c.synthetic]
        sources = [c for c in cases if c.label == args.label]
        if not sources:
            raise InputError(args.manifest, f"has no real case with label {args.label} to take masks from")
        models = load_neogen(args.bundle, resolve_device(args.device))
        synthetic = generate_cases(models, plan_synthetic(sources, args.count, args.seed), args.label, staging, args.seed, args.steps)
        write_manifest(synthetic, staging / "manifest.csv")
        if args.report:
            from neonet_core.neogen.report import write_report

            write_report(models, cases, synthetic, staging / "report", seed=args.seed, steps=args.steps)
    print(f"wrote {len(synthetic)} synthetic label-{args.label} patches and {args.out / 'manifest.csv'}")
    if args.report:
        print(f"quality report: {args.out / 'report' / 'report.md'}")
    return 0
