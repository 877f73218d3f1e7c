"""``neonet balance``: make a training manifest 1:1 with NeoGen synthetic minority patches."""

from __future__ import annotations

from pathlib import Path

from neonet_core.device import resolve_device


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "balance",
        help="balance a training set 1:1 with synthetic minority-class patches",
        description="Count the classes of the real cases in --manifest (give a TRAINING set: validation cases must "
        "not be in it) and generate synthetic patches of the minority class until both classes have as many cases. "
        "Each synthetic patch is conditioned on the masks of a real minority case (each used about equally often, "
        "randomly flipped / rotated by 90 degrees in the axial plane). Writes the patches and masks under --out and "
        "OUT/manifest.csv: the real cases followed by the synthetic ones (synthetic=1, source_case). Reproducible by --seed.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder or .zip with autoencoder, ldm and controlnet")
    parser.add_argument("--manifest", type=Path, required=True, help="training manifest (labels and tumour masks required)")
    parser.add_argument("--out", type=Path, required=True, help="new output folder (published whole when done; never merged into)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same synthetic set)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the bundle's)")
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.fileio import publish_folder
    from neonet_core.manifest import read_manifest
    from neonet_core.neogen.generate import balance

    with publish_folder(args.out) as staging:  # --out checked and claimed before any work; published whole
        balance(args.bundle, args.manifest, staging, seed=args.seed, steps=args.steps, device=resolve_device(args.device))
    path = args.out / "manifest.csv"
    cases = read_manifest(path)
    counts = {label: sum(c.label == label for c in cases) for label in (0, 1)}
    n_syn = sum(c.synthetic for c in cases)
    print(f"balanced: {counts[0]} PNI- / {counts[1]} PNI+ ({n_syn} synthetic); manifest {path}")
    return 0
