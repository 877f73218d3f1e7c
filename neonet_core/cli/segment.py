"""``neonet segment``: NeoSeg's tumour mask for one volume.

The mask (and the probability map, when asked for) are written under temporary names and published
together when both are complete (:func:`neonet_core.fileio.atomic_paths`); an existing file is never
replaced. With ``--progress json`` the stages load, localise and write are reported.
"""

from __future__ import annotations

from pathlib import Path

from neonet_core.device import resolve_device

STAGES = ("load", "localise", "write")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment the tumour of one MRI with a NeoSeg bundle",
        description="Segment the tumour of one volume with the NeoSeg network of a model bundle. The volume is "
        "resampled to the network's coarse isotropic grid, segmented by sliding window, the connected component "
        "most likely to be the tumour is kept and its holes filled, and the mask is written on the input volume's "
        "grid (uint8, 1 = tumour). Prints the tumour volume in mL. When no tumour is found nothing is written and "
        "the exit code is 1 (unless --allow-empty); so too when the component found is too large to be a tumour. "
        "An existing output file is never replaced.",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="model bundle folder or .zip holding a NeoSeg network")
    parser.add_argument("--image", type=Path, required=True, help="the MRI volume (NIfTI, NRRD, MHA or a DICOM folder)")
    parser.add_argument("--out", type=Path, required=True, help="mask file to write (.nii.gz, .nii or .nrrd; must not exist)")
    parser.add_argument("--probability", type=Path, default=None, help="also write the tumour probability map here (float32)")
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.add_argument("--allow-empty", action="store_true", help="write an empty mask (exit 0) when no tumour is found")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.errors import InputError, NoTumourFoundError
    from neonet_core.fileio import atomic_paths
    from neonet_core.io import check_writable, read_volume, write_volume
    from neonet_core.neoseg import load_segmenter
    from neonet_core.progress import Progress

    outputs = [check_writable(path) for path in (args.out, args.probability) if path is not None]
    if len(outputs) == 2 and outputs[0].absolute() == outputs[1].absolute():
        raise InputError(args.probability, "is also --out; give the probability map its own file")
    device = resolve_device(args.device)
    with atomic_paths(outputs, replace=False) as temps, Progress(len(STAGES), "segment") as progress:  # checked before the work
        segmenter = load_segmenter(args.bundle, device)
        image = read_volume(args.image)
        progress.update(1, part="load")
        result = segmenter.segment(image, probability=args.probability is not None)
        progress.update(1, part="localise")
        if not result.found and not args.allow_empty:
            raise NoTumourFoundError(f"NeoSeg found no tumour in {args.image}; nothing written (--allow-empty writes an empty mask)")
        write_volume(result.mask, temps[0])
        if args.probability is not None:
            write_volume(result.probability, temps[1])
        progress.update(1, part="write")
    if result.found:
        print(f"tumour volume: {result.volume_ml:.2f} mL; mask written to {args.out}")
    else:
        print(f"no tumour found; empty mask written to {args.out}")
    return 0
