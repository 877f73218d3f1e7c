"""``neonet crop``: cut TLCR patches for one case or a whole manifest.

Output folder layout::

    OUT/patches.csv            patch manifest (the cohort contract; paths point to the patches)
    OUT/crop_report.json       per case: status, error, ROI (LPS), tumour extent, normalisation
    OUT/<case_id>/image.nii.gz, tumour.nii.gz[, anatomy.nii.gz]    (--format nifti)
    OUT/<case_id>/patch.npz    arrays image, tumour[, anatomy], spacing, origin, direction, roi (--format npz;
                               the manifest's image/tumor_mask/anatomy_mask columns all name this file)
    OUT/<case_id>/roi.mrk.json the crop box as a 3D Slicer markups ROI

OUT is written into a private temporary folder and published with one rename when every case is
done (:func:`neonet_core.fileio.publish_folder`); ``--overwrite`` replaces an earlier crop output
folder as a whole, never a folder holding anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from neonet_core.device import resolve_device

FORMATS = ("nifti", "npz")
_VOLUME_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "crop",
        help="cut tumour-localised ROI crops (TLCR patches)",
        description="Cut a cube of fixed physical size centred on the tumour (the bounding box of its largest "
        "connected component, or of all tumour voxels) and resample it to an isotropic patch, for one case "
        "(--image, --mask) or every case of a manifest (--manifest). Writes the image/tumour/anatomy patches, "
        "the ROI as a 3D Slicer .mrk.json, a patch manifest (patches.csv) and crop_report.json. Where the cube "
        "leaves the image it is padded with the image's 1st-percentile intensity. A case that fails is reported "
        "and the others go on; the exit code is then 1. --out must be a new folder; --overwrite replaces an earlier "
        "crop output folder as a whole.",
    )
    source = parser.add_argument_group("input (one case, or --manifest)")
    source.add_argument("--image", type=Path, help="the MRI volume (NIfTI, NRRD, MHA or a DICOM folder)")
    source.add_argument("--mask", type=Path, help="its binary tumour mask (every non-zero voxel is tumour)")
    source.add_argument("--anatomy", type=Path, help="optional anatomy labelmap (1 liver, 2 bile_duct, 3 vessel, 4 tumour)")
    source.add_argument("--case-id", help="case id for --image (default: the image file name without suffix)")
    source.add_argument("--manifest", type=Path, help="cohort manifest CSV (case_id,image,tumor_mask,...)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--roi-mm", type=float, default=None, help="edge of the crop cube in mm (default: the preset's, 48 for tiny, 64 for paper)")
    parser.add_argument("--patch-size", type=int, default=None, help="voxels per patch edge (default 32)")
    parser.add_argument("--component", choices=("largest", "all"), default=None, help="tumour component to centre on (default largest)")
    parser.add_argument("--format", choices=FORMATS, default="nifti", help="patch files: nifti (.nii.gz each) or npz (one file per case)")
    parser.add_argument(
        "--normalise",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="map the patch's 0.5/99.5 intensity percentiles to 0/1, clipped (default on); --no-normalise keeps raw intensities",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier crop output folder --out (one holding crop_report.json)")
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="model bundle with a NeoSeg network: cases without a tumour mask are segmented automatically "
        "(a given mask always wins; a case where NeoSeg finds no tumour fails, never a centre crop)",
    )
    from neonet_core.device import add_device_option

    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.config import PreprocessConfig
    from neonet_core.errors import InputError
    from neonet_core.fileio import publish_folder

    cfg = PreprocessConfig()
    for name in ("roi_mm", "patch_size", "component"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if cfg.roi_mm <= 0 or cfg.patch_size < 2:
        raise InputError(None, "--roi-mm must be positive and --patch-size at least 2")
    cases, failures = _cases(args)
    folders = _case_folders(args, cases)
    replace = bool(args.overwrite) and _is_crop_output(args.out)
    with publish_folder(args.out, replace=replace) as staging:  # --out checked and claimed before any work
        args.segmenter = None
        if args.bundle is not None:  # checked once, before any case
            from neonet_core.neoseg import load_segmenter

            args.segmenter = load_segmenter(args.bundle, resolve_device(args.device))
        code = _crop_all(cases, failures, staging, folders, cfg, args)
    print(f"wrote {args.out}", file=sys.stderr)
    return code


def _is_crop_output(out: Path) -> bool:
    """True for an existing crop output folder (--overwrite may replace it); InputError for any other non-empty folder."""
    from neonet_core.errors import InputError

    if not out.is_dir() or not any(out.iterdir()):
        return False
    if not (out / "crop_report.json").is_file():
        raise InputError(out, "holds files that are not a crop output (no crop_report.json); --overwrite replaces only "
                              "a folder written by neonet crop, choose a new folder")
    return True


def _case_folders(args, cases) -> dict[str, str]:
    from neonet_core.batch import case_folder_names

    return case_folder_names([c.case_id for c in cases], args.manifest or args.image)


# --- inputs ---------------------------------------------------------------------------------------
def _cases(args):
    """The cases to crop and the (case_id, problem) failures found before reading any image."""
    from neonet_core.errors import InputError, ManifestError
    from neonet_core.manifest import Case, parse_manifest

    if (args.manifest is None) == (args.image is None):
        raise InputError(None, "give either --image (with --mask) or --manifest")
    if args.manifest is not None:
        if args.mask or args.anatomy or args.case_id:
            raise InputError(None, "--mask, --anatomy and --case-id go with --image, not with --manifest")
        cases, problems = parse_manifest(args.manifest)
        whole = [p for p in problems if not p.case_id]
        if whole or not cases and problems:
            raise ManifestError(args.manifest, [tuple(p) for p in whole or problems])
        failures = [(p.case_id, f"{p.file}: {p.problem}" if p.file else p.problem) for p in problems]
        return cases, failures
    case_id = args.case_id or _stem(args.image)
    return [Case(case_id, args.image, args.mask, args.anatomy, None, case_id)], []


def _stem(path: Path) -> str:
    name = path.name
    for suffix in _VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _patch_files(folder: Path, fmt: str, anatomy: bool) -> dict[str, Path]:
    if fmt == "npz":
        npz = folder / "patch.npz"
        return {"image": npz, "tumour": npz, **({"anatomy": npz} if anatomy else {})}
    names = ("image", "tumour", "anatomy") if anatomy else ("image", "tumour")
    return {name: folder / f"{name}.nii.gz" for name in names}


# --- work -------------------------------------------------------------------------------------------
def _crop_all(cases, failures, out: Path, folders: dict, cfg, args) -> int:
    from neonet_core.batch import run_cases
    from neonet_core.fileio import write_text_atomic
    from neonet_core.manifest import write_manifest
    from neonet_core.progress import emit

    patch_cases = []

    def crop(case) -> dict:
        patch_case, info = _crop_case(case, out, folders[case.case_id], cfg, args)
        patch_cases.append(patch_case)
        return info

    report = run_cases(cases, crop, "crop", failures)
    settings = {"roi_mm": cfg.roi_mm, "patch_size": cfg.patch_size, "component": cfg.component, "format": args.format,
                "normalise": bool(args.normalise)}
    write_text_atomic(out / "crop_report.json", json.dumps({"settings": settings, "cases": report}, indent=2) + "\n")
    if patch_cases:
        write_manifest(patch_cases, out / "patches.csv", overwrite=True)
    failed = [cid for cid, r in report.items() if r["status"] == "failed"]
    emit("summary", stage="crop", cropped=len(patch_cases), failed=failed)
    summary = f"cropped {len(patch_cases)} of {len(report)} case(s)"
    if failed:
        summary += f"; {len(failed)} failed: {', '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}"
    print(summary, file=sys.stderr)
    return 1 if failed else 0


def _crop_case(case, out: Path, name: str, cfg, args):
    """Crop one case and write its files; returns (patch manifest Case, report info)."""
    from dataclasses import replace

    from neonet_core.batch import report_case
    from neonet_core.errors import InputError
    from neonet_core.fileio import publish_folder
    from neonet_core.manifest import load_case
    from neonet_core.markups import write_roi_mrk_json
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import tlcr_from_config

    if case.tumor_mask is None and args.bundle is None:
        raise InputError(case.image, f"case {case.case_id}: no tumour mask given (give one, or --bundle to find the tumour with NeoSeg)")
    image, tumour, anatomy = load_case(case)
    source = "user"
    if case.tumor_mask is None:
        from neonet_core.neoseg import localise

        tumour, source = localise(image, None, args.segmenter)
    result = tlcr_from_config(image, tumour, anatomy, cfg)
    image_patch = result.image_patch
    if args.normalise:
        image_patch = normalise_from_config(image_patch, cfg)
    folder = out / name
    files = _patch_files(folder, args.format, anatomy is not None)
    patches = {"image": image_patch, "tumour": result.tumour_patch, "anatomy": result.anatomy_patch}
    with publish_folder(folder) as staging:  # all of a case's files or none of them
        if args.format == "npz":
            _write_npz(staging / files["image"].name, patches, result.roi)
        else:
            from neonet_core.io import write_volume

            for key, path in files.items():
                write_volume(patches[key], staging / path.name)
        write_roi_mrk_json(result.roi, staging / "roi.mrk.json", name=f"TLCR {case.case_id}")
    patch_case = replace(case, image=files["image"], tumor_mask=files["tumour"], anatomy_mask=files.get("anatomy"))
    info = {
        "folder": folder.relative_to(out).as_posix(),
        "tumour_source": source,
        "roi": result.roi.to_dict(),
        "roi_file": (folder / "roi.mrk.json").relative_to(out).as_posix(),
        "tumour_extent_mm": list(result.tumour_extent_mm),
        "tumour_fits": result.tumour_fits,
        "tumour_voxels_in_patch": int(result.tumour_patch.array.sum()),
        "background": result.background,
        "normalisation": image_patch.metadata.get("normalisation"),
    }
    if not result.tumour_fits:
        report_case("crop", case.case_id, f"warning: tumour extent {np.round(result.tumour_extent_mm, 1).tolist()} mm exceeds the {cfg.roi_mm:g} mm crop", "warning")
    return patch_case, info


def _write_npz(path: Path, patches: dict, roi) -> None:
    from neonet_core.fileio import atomic_path

    grid = patches["image"]
    arrays = {name: v.array for name, v in patches.items() if v is not None}
    geometry = {
        "spacing": np.asarray(grid.spacing),
        "origin": np.asarray(grid.origin),
        "direction": grid.direction,
        "roi": np.asarray(json.dumps(roi.to_dict())),
        "normalisation": np.asarray(json.dumps(grid.metadata.get("normalisation"))),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays, **geometry)
