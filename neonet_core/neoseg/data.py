"""NeoSeg preprocessing: the coarse isotropic working grid, resampling onto it, and the training data.

Working grid: isotropic ``spacing_mm`` voxels along the image's own axes (its direction), covering
the image's physical box, centred on it. Images go there by block averaging (SimpleITK ``BinShrink``,
integer factors, in the image's own pixel type: an int16 scan is never copied to float at full size)
followed by linear resampling; masks by nearest neighbour. The coarse image is then normalised with
:func:`neonet_core.normalize.robust_normalise`.

Training randomness (crop position, then :mod:`neonet_core.augment` on image and labels) lives in :func:`random_crops`, called
from the stage's ``training_step`` after the engine has seeded the global torch RNG for that step,
so a resumed run sees exactly the crops of an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neonet_core.augment import augment_batch
from neonet_core.volume import Volume

TUMOUR_ONLY_CLASSES = ("background", "tumour")
ANATOMY_CLASSES = ("background", "liver", "bile_duct", "vessel", "tumour")  # values of labels.ANATOMY_LABELS


def class_names(predict_anatomy: bool) -> tuple[str, ...]:
    """Output channels of the network; the tumour is always the last one."""
    return ANATOMY_CLASSES if predict_anatomy else TUMOUR_ONLY_CLASSES


def working_grid(image: Volume, spacing_mm: float) -> Volume:
    """An empty uint8 Volume: the isotropic ``spacing_mm`` grid along ``image``'s axes covering its box."""
    spacing_in = np.asarray(image.spacing, dtype=np.float64)
    n_in = np.asarray(image.size_ijk, dtype=np.float64)
    n_out = np.maximum(1, np.ceil(n_in * spacing_in / spacing_mm - 1e-6)).astype(int)
    centre_offset = (n_in - 1) / 2.0 * spacing_in - (n_out - 1) / 2.0 * spacing_mm  # along the axes, mm
    origin = np.asarray(image.origin) + image.direction @ centre_offset
    shape = tuple(int(v) for v in n_out[::-1])
    return Volume(np.zeros(shape, dtype=np.uint8), (spacing_mm,) * 3, tuple(origin), image.direction)


def _sitk_resample(image, grid: Volume, interpolator: str, pixel_type):
    import SimpleITK as sitk

    return sitk.Resample(
        image,
        [int(n) for n in grid.size_ijk],
        sitk.Transform(),
        getattr(sitk, interpolator),
        grid.origin,
        grid.spacing,
        tuple(grid.direction.flatten()),
        0.0,
        pixel_type,
        True,  # nearest-neighbour extrapolation at the box edges
    )


def image_to_grid(image: Volume, grid: Volume) -> np.ndarray:
    """``image`` block-averaged and linearly resampled onto ``grid``: float32 ``grid.array.shape``.

    The block average (integer factor ``floor(grid spacing / image spacing)`` per axis) is done in the
    image's own pixel type, so the only full-size copy is the one SimpleITK makes of the input.
    """
    import SimpleITK as sitk

    source = image.to_sitk()
    factors = [max(1, int(np.floor(g / s + 1e-6))) for g, s in zip(grid.spacing, image.spacing)]
    if max(factors) > 1:
        source = sitk.BinShrink(source, factors)
    out = _sitk_resample(source, grid, "sitkLinear", sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def mask_to_grid(mask: Volume, grid: Volume) -> np.ndarray:
    """A label mask resampled (nearest neighbour) onto ``grid``: uint8 ``grid.array.shape``."""
    import SimpleITK as sitk

    out = _sitk_resample(mask.with_array(mask.array.astype(np.uint8, copy=False)).to_sitk(), grid, "sitkNearestNeighbor", sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out)


def normalised_coarse_image(image: Volume, spacing_mm: float, percentiles=(0.5, 99.5)) -> tuple[np.ndarray, Volume]:
    """``(array, grid)``: the image on its working grid, robustly normalised to [0, 1], float32 (D, H, W)."""
    from neonet_core.normalize import robust_normalise

    grid = working_grid(image, spacing_mm)
    return robust_normalise(image_to_grid(image, grid), percentiles[0], percentiles[1]), grid


def target_labels(tumour: Volume, anatomy: Volume | None, grid: Volume, predict_anatomy: bool) -> np.ndarray:
    """Class indices on ``grid`` (uint8 D, H, W): 0 background, last class = tumour.

    With ``predict_anatomy`` the anatomy labels 1..3 (liver, bile duct, vessel) are kept and the
    tumour (its own mask, plus anatomy label 4) overrides them.
    """
    tumour_label = len(class_names(predict_anatomy)) - 1
    labels = np.zeros(grid.array.shape, dtype=np.uint8)
    if predict_anatomy and anatomy is not None:
        coarse = mask_to_grid(anatomy, grid)
        labels[(coarse >= 1) & (coarse <= 3)] = coarse[(coarse >= 1) & (coarse <= 3)]
        labels[coarse == 4] = tumour_label
    labels[mask_to_grid(tumour.with_array((tumour.array != 0).astype(np.uint8)), grid) != 0] = tumour_label
    return labels


@dataclass
class CoarseCase:
    """One case on its working grid: ``image`` float32 (D, H, W) in [0, 1], ``labels`` uint8 (D, H, W)."""

    case_id: str
    image: np.ndarray
    labels: np.ndarray


def prepare_case(case_id: str, image: Volume, tumour: Volume, anatomy: Volume | None, cfg, percentiles) -> CoarseCase:
    """Put one case on its working grid (``cfg`` is a SegConfig)."""
    array, grid = normalised_coarse_image(image, cfg.spacing_mm, percentiles)
    return CoarseCase(case_id, array, target_labels(tumour, anatomy, grid, cfg.predict_anatomy))


class CoarseCases(torch.utils.data.Dataset):
    """Map-style dataset of whole coarse cases as numpy arrays (listed, not stacked, by the engine's collate)."""

    def __init__(self, cases: list[CoarseCase]):
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> dict:
        case = self.cases[i]
        return {"image": case.image, "labels": case.labels, "case_id": case.case_id}


def _pad_to(array: np.ndarray, size) -> np.ndarray:
    pads = [(0, max(0, s - n)) for n, s in zip(array.shape, size)]
    return np.pad(array, pads) if any(p[1] for p in pads) else array


def random_crop(image: np.ndarray, labels: np.ndarray, cfg, tumour_label: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented training crop of ``cfg.roi_size`` from a whole coarse case (torch global RNG only).

    Returns ``(image (1, D, H, W) float32, labels (1, D, H, W) int64)``. With probability
    ``cfg.pos_fraction`` the crop is centred on a random tumour voxel, else placed uniformly.
    """
    size = tuple(int(s) for s in cfg.roi_size)
    image, labels = _pad_to(image, size), _pad_to(labels, size)
    shape = np.asarray(image.shape)
    tumour = np.argwhere(labels == tumour_label)
    if len(tumour) and float(torch.rand(())) < cfg.pos_fraction:
        centre = tumour[int(torch.randint(len(tumour), ()))]
        start = np.clip(centre - np.asarray(size) // 2, 0, shape - size)
    else:
        start = np.array([int(torch.randint(int(n - s) + 1, ())) for n, s in zip(shape, size)])
    box = tuple(slice(int(a), int(a) + s) for a, s in zip(start, size))
    x = torch.from_numpy(np.ascontiguousarray(image[box]))[None]
    y = torch.from_numpy(np.ascontiguousarray(labels[box]).astype(np.int64))[None]
    x, (y,) = augment_batch(x[None].float(), cfg.augment, extras=[y[None]])
    x, y = x[0], y[0]
    return x.float(), y


def random_crops(batch: dict, cfg, tumour_label: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack one random crop per case of an engine batch: ``(B, 1, D, H, W)`` float32, int64 labels."""
    pairs = [random_crop(im, lab, cfg, tumour_label) for im, lab in zip(batch["image"], batch["labels"])]
    return torch.stack([p[0] for p in pairs]).to(device), torch.stack([p[1] for p in pairs]).to(device)
