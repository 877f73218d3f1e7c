"""One phantom case: anatomy + lesions -> tissue image -> scanner -> Volumes and masks.

Each case draws from its own generators seeded by ``SeedSequence([seed, index])`` (one child stream
per part), so a case is reproducible on its own, in any order or process, and a case's anatomy,
tumour and confounders do not depend on its label: only the PNI extensions do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neonet_core.labels import ANATOMY_LABELS, TUMOUR_LABEL
from neonet_core.phantom.anatomy import Anatomy, build_anatomy, nerve_along
from neonet_core.phantom.grid import DESIGN_FOV_MM, Grid, draw_tube, rotation_matrix, soft
from neonet_core.phantom.lesions import Tumour, build_confounders, build_extensions, build_tumour, nerve_exits
from neonet_core.phantom.params import PhantomParams
from neonet_core.phantom.scanner import acquire
from neonet_core.volume import Volume

LABEL_IDS = {name: value for value, name in ANATOMY_LABELS.items()}
MAX_ROTATION_DEGREES = 6.0


@dataclass
class PhantomCase:
    """A generated case. ``image`` int16, ``tumour`` uint8 {0,1}, ``anatomy`` uint8 (ANATOMY_LABELS) share
    one grid. The debug masks (bool ``(nz, ny, nx)``, not written to disk) say where the PNI ``extension``,
    the ``nerves`` and the ``liver`` (including what lies inside it) are."""

    image: Volume
    tumour: Volume
    anatomy: Volume
    label: int
    extension: np.ndarray
    nerves: np.ndarray
    liver: np.ndarray


def _tissue_values(rng: np.random.Generator) -> dict[str, float]:
    """Hepatobiliary-phase signal of each tissue relative to the liver (= 1)."""
    u = rng.uniform
    return {
        "fat": u(1.05, 1.25), "muscle": u(0.35, 0.5), "cavity": u(0.45, 0.6), "bone": u(0.6, 0.8),
        "aorta": u(0.1, 0.25), "spleen": u(0.5, 0.65), "kidney": u(0.45, 0.6), "bowel": u(0.3, 0.9), "liver": 1.0,
        "vessel": u(0.15, 0.28), "duct": u(0.2, 0.32), "nerve": u(0.72, 0.85), "tumour": u(0.5, 0.62),
    }


def _paint(image: np.ndarray, value, occupancy: np.ndarray) -> None:
    """``image = image + (value - image) * occupancy`` in place (partial-volume mixing)."""
    image += (value - image) * occupancy


def generate_case(index: int, seed: int, label: int, params: PhantomParams | None = None) -> PhantomCase:
    """Generate case ``index`` of cohort ``seed`` with PNI ``label`` (0 or 1) on ``params``' grid."""
    params = params or PhantomParams()
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    anat_rng, tumour_rng, conf_rng, pni_rng, scan_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), int(index)]).spawn(5)
    )
    grid = Grid(tuple(params.size[::-1]), params.spacing, rotation_matrix(anat_rng, MAX_ROTATION_DEGREES))
    scale = float(np.min(grid.fov_mm / DESIGN_FOV_MM))
    anatomy = build_anatomy(anat_rng, grid, scale)
    values = _tissue_values(anat_rng)
    tumour = build_tumour(tumour_rng, grid, anatomy, scale)
    exits = nerve_exits(grid, anatomy.nerves, tumour.mask)
    for _ in range(5):  # make sure a fibre leaves the tumour (decided before, and whatever, the label)
        if exits:
            break
        extra = nerve_along(tumour_rng, anatomy.duct_paths[tumour.path_index], anatomy.hilum, scale)
        anatomy.nerves.append((extra, tumour.path_index))
        draw_tube(grid, anatomy.nerve_sd, extra.points, extra.radii)
        exits = nerve_exits(grid, anatomy.nerves[-1:], tumour.mask)
    confounders = build_confounders(conf_rng, grid, tumour, scale)
    if label == 1:
        extension_sd, contrast = build_extensions(pni_rng, grid, exits, params.pni)
    else:
        extension_sd, contrast = None, 0.0

    tissue = _render(grid, anatomy, tumour, confounders, extension_sd, contrast, values)
    image = acquire(scan_rng, grid, tissue, params.scanner)

    liver = anatomy.liver_sd <= 0
    anatomy_mask = np.zeros(grid.shape, dtype=np.uint8)
    anatomy_mask[liver] = LABEL_IDS["liver"]
    anatomy_mask[anatomy.vessel_sd <= 0] = LABEL_IDS["vessel"]
    anatomy_mask[anatomy.duct_sd <= 0] = LABEL_IDS["bile_duct"]
    anatomy_mask[tumour.mask] = TUMOUR_LABEL
    touched = grid.pv_width / 2  # voxels the drawing touched at all (soft occupancy > 0)
    extension = np.zeros(grid.shape, bool) if extension_sd is None else (extension_sd < touched) & ~tumour.mask

    geometry = dict(spacing=params.spacing, origin=tuple(grid.origin), direction=np.eye(3))
    meta = {"case_index": int(index), "seed": int(seed), "label": int(label)}
    return PhantomCase(
        image=Volume(image, **geometry, metadata=meta),
        tumour=Volume(tumour.mask.astype(np.uint8), **geometry, metadata=meta),
        anatomy=Volume(anatomy_mask, **geometry, metadata=meta),
        label=int(label),
        extension=extension,
        nerves=anatomy.nerve_sd < touched,
        liver=liver,
    )


def _render(grid: Grid, anatomy: Anatomy, tumour: Tumour, confounders, extension_sd, contrast, values) -> np.ndarray:
    """The noiseless tissue image ``(nz, ny, nx)`` float32 (liver = 1), painted back to front."""
    w = grid.pv_width
    image = np.zeros(grid.shape, dtype=np.float32)
    _paint(image, values["fat"], soft(anatomy.body_sd, w))
    _paint(image, values["muscle"], soft(anatomy.wall_sd, w))
    _paint(image, values["cavity"], soft(anatomy.cavity_sd, w))
    for sd, name in anatomy.organs:
        _paint(image, values[name], soft(sd, w))
    _paint(image, values["liver"] * (1.0 + 0.03 * anatomy.liver_texture), soft(anatomy.liver_sd, w))
    _paint(image, values["nerve"], soft(anatomy.nerve_sd, w))
    if extension_sd is not None:  # tumour sleeves around nerves; duct and vessel lumens stay in front
        ext_value = values["liver"] + contrast * (values["tumour"] - values["liver"])
        _paint(image, ext_value, soft(extension_sd, w))
    _paint(image, values["vessel"], soft(anatomy.vessel_sd, w))
    _paint(image, values["duct"], soft(anatomy.duct_sd, w))
    for strand in confounders:
        _paint(image, strand.tissue, soft(strand.sd, w))
    _paint(image, values["tumour"] * (1.0 + 0.06 * tumour.texture), soft(tumour.sd, w))
    return image
