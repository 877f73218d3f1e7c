"""NeoSeg inference: any volume in, a tumour mask on the same grid out.

Pipeline: the image goes to its coarse working grid (:mod:`neonet_core.neoseg.data`), the network
runs by sliding window, the tumour component with the highest summed probability is kept on the
coarse grid, and only that component's neighbourhood of the probability map is resampled (linear)
onto the matching block of the input grid, thresholded, and its holes filled. Nothing but the uint8
mask is allocated at full size unless the full probability map is asked for. A component too large
to be a tumour (:func:`postprocess.implausible_reasons`) is refused on the coarse grid, before any
full-size work, with :class:`~neonet_core.errors.ImplausibleTumourError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from neonet_core.errors import ImplausibleTumourError, NeoNetError, NoTumourFoundError
from neonet_core.labels import TUMOUR_LABEL
from neonet_core.neoseg import postprocess
from neonet_core.neoseg.data import class_names, normalised_coarse_image
from neonet_core.neoseg.stage import predict_probabilities
from neonet_core.volume import Volume

NETWORK = "seg"


@dataclass(frozen=True, eq=False)
class SegResult:
    """mask: uint8 0/1 on the input grid. probability: float32 tumour probability on the input grid
    (only when asked for). volume_ml: tumour volume. found: False when no tumour was found.
    anatomy: uint8 labelmap on the input grid (1 liver, 2 bile duct, 3 vessel, 4 = the tumour mask)
    when the network predicts anatomy, else None."""

    mask: Volume
    probability: Volume | None
    volume_ml: float
    found: bool
    anatomy: Volume | None = None


class Segmenter:
    """A NeoSeg network with its config, ready to segment volumes (see :func:`load_segmenter`)."""

    def __init__(self, net: nn.Module, cfg, percentiles=(0.5, 99.5), device: str = "cpu", source: str = "<in memory>"):
        from neonet_core.device import resolve_device

        self.cfg, self.percentiles, self.source = cfg, tuple(percentiles), source
        self.classes = class_names(cfg.predict_anatomy)
        self.tumour_label = len(self.classes) - 1
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()

    def coarse_probabilities(self, image: Volume) -> tuple[np.ndarray, Volume]:
        """``(probs (C, D, H, W) float32, working grid)`` for ``image``."""
        array, grid = normalised_coarse_image(image, self.cfg.spacing_mm, self.percentiles)
        return predict_probabilities(self.net, array, self.cfg, self.device), grid

    def segment(self, image: Volume, probability: bool = False) -> SegResult:
        """Segment the tumour of ``image``; the mask (and probability) lie on ``image``'s grid.

        Raises ImplausibleTumourError when the component found is too large to be a tumour."""
        array, grid = normalised_coarse_image(image, self.cfg.spacing_mm, self.percentiles)
        probs = predict_probabilities(self.net, array, self.cfg, self.device)
        tumour_prob = probs[self.tumour_label]
        keep = postprocess.keep_tumour_component(
            tumour_prob, self.cfg.threshold, postprocess.min_voxels(self.cfg.min_component_ml, grid.spacing)
        )
        reasons = [] if keep is None else postprocess.implausible_reasons(keep, grid.spacing, array)
        if reasons:
            where = image.metadata.get("path", "the image")
            raise ImplausibleTumourError(f"{where}: NeoSeg's tumour is implausible ({'; '.join(reasons)}): is this a liver "
                                         "MRI, and was NeoSeg trained enough? Give a tumour mask instead")
        del array
        mask = np.zeros(image.array.shape, dtype=np.uint8)
        if keep is not None:
            _paste_fine_component(mask, image, grid.with_array(tumour_prob), keep, self.cfg)
        prob_volume = None
        if probability:
            prob_volume = _to_input_grid(grid.with_array(tumour_prob), image, "linear", np.float32)
        anatomy = None
        if self.cfg.predict_anatomy:
            labels = np.argmax(probs, axis=0).astype(np.uint8)
            labels[labels == self.tumour_label] = 0
            anatomy = _to_input_grid(grid.with_array(labels), image, "nearest", np.uint8)
            anatomy.array[mask == 1] = TUMOUR_LABEL
        found = bool(mask.any())
        return SegResult(image.with_array(mask), prob_volume, postprocess.volume_ml(mask, image.spacing), found, anatomy)


def _to_input_grid(coarse: Volume, image: Volume, interpolation: str, dtype) -> Volume:
    """``coarse`` resampled onto ``image``'s grid (``dtype``), metadata of ``image`` kept."""
    from neonet_core.resample import resample_volume

    grid = Volume(np.empty(image.array.shape, dtype=np.uint8), image.spacing, image.origin, image.direction)
    out = resample_volume(coarse, grid, interpolation, 0.0, dtype=dtype)
    return image.with_array(out.array)


def _paste_fine_component(mask: np.ndarray, image: Volume, prob: Volume, keep: np.ndarray, cfg) -> None:
    """Write the kept coarse component, refined on the input grid, into ``mask`` (in place).

    The coarse probability outside the component (dilated by one voxel) is zeroed, then resampled
    (linear) onto just the block of the input grid that covers it and thresholded; the largest fine
    component is kept (all of them come from the one coarse component) and its holes filled. A
    component too thin to survive the threshold on the fine grid falls back to its nearest-neighbour
    footprint. Memory: the fine probability exists only inside SimpleITK, for the threshold; what
    comes back is a uint8 block.
    """
    from neonet_core.resample import resample_volume

    region = ndimage.binary_dilation(keep, structure=np.ones((3, 3, 3), dtype=bool))
    local = prob.with_array(np.where(region, np.maximum(prob.array, keep * (cfg.threshold + 1e-3)), 0).astype(np.float32))
    box = _fine_box(image, prob, region)
    if box is None:
        return
    lo, hi = box
    origin = image.index_to_physical(lo[::-1].astype(np.float64))
    block = Volume(np.zeros(tuple(hi - lo + 1), dtype=np.uint8), image.spacing, tuple(origin), image.direction)
    refined = postprocess.keep_largest_component(_resample_above(local, block, cfg.threshold))
    if refined is None:
        refined = resample_volume(prob.with_array(keep.astype(np.uint8)), block, "nearest", 0).array != 0
    view = mask[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
    view[refined] = 1


def _resample_above(source: Volume, reference: Volume, threshold: float) -> np.ndarray:
    """``source`` resampled (linear, float32) onto ``reference``'s grid, then ``> threshold``: uint8 0/1."""
    import SimpleITK as sitk

    out = sitk.Resample(
        source.to_sitk(),
        [int(n) for n in reference.size_ijk],
        sitk.Transform(),
        sitk.sitkLinear,
        reference.origin,
        reference.spacing,
        tuple(reference.direction.flatten()),
        0.0,
        sitk.sitkFloat32,
    )
    above = float(np.nextafter(np.float32(threshold), np.float32(np.inf)))  # strictly greater than threshold
    return sitk.GetArrayFromImage(sitk.BinaryThreshold(out, above, float(np.finfo(np.float32).max), 1, 0))


def _fine_box(image: Volume, coarse: Volume, region: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive (lo, hi) voxel bounds (k, j, i) of ``image`` covering ``region`` of ``coarse`` (+1 voxel)."""
    lo, hi = postprocess.bbox(region)
    corners = np.array([[a, b, c] for a in (lo[2] - 1, hi[2] + 1) for b in (lo[1] - 1, hi[1] + 1) for c in (lo[0] - 1, hi[0] + 1)], float)
    ijk = image.physical_to_index(coarse.index_to_physical(corners))
    size = np.asarray(image.size_ijk)
    lo_ijk = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, size - 1)
    hi_ijk = np.clip(np.ceil(ijk.max(axis=0)).astype(int), 0, size - 1)
    if np.any(hi_ijk < lo_ijk):
        return None
    return lo_ijk[::-1], hi_ijk[::-1]


def network_config(cfg, percentiles) -> dict:
    """What the bundle stores beside the seg weights: the SegConfig, class names and normalisation."""
    import dataclasses

    return {"seg": dataclasses.asdict(cfg), "classes": list(class_names(cfg.predict_anatomy)), "percentiles": list(percentiles)}


def load_segmenter(bundle, device: str = "cpu") -> Segmenter:
    """A :class:`Segmenter` from a bundle folder/.zip path or a loaded :class:`~neonet_core.bundle.Bundle`.

    Raises BundleError when the bundle is invalid or holds no NeoSeg network.
    """
    from neonet_core.bundle import Bundle, load_bundle
    from neonet_core.config import NeoNetConfig
    from neonet_core.neoseg.model import build_seg_net

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    net = bundle.build(NETWORK, lambda stored: build_seg_net(NeoNetConfig.from_dict({"seg": stored["seg"]}).seg))
    stored = bundle.network_config(NETWORK)
    cfg = NeoNetConfig.from_dict({"seg": stored["seg"]}).seg
    return Segmenter(net, cfg, stored.get("percentiles", (0.5, 99.5)), device, str(bundle.path))


def localise(image: Volume, tumour_mask: Volume | None, bundle=None, device: str = "cpu") -> tuple[Volume, str]:
    """The tumour to crop around: ``(mask, "user")`` when one is given (it always wins), else NeoSeg's.

    ``bundle``: a bundle path, a Bundle or a :class:`Segmenter`. Raises NoTumourFoundError when
    NeoSeg finds nothing, and NeoNetError when there is neither a mask nor a bundle.
    """
    if tumour_mask is not None:
        return tumour_mask, "user"
    where = image.metadata.get("path", "<image>")
    if bundle is None:
        raise NeoNetError(f"{where}: no tumour mask given and no NeoSeg bundle to find the tumour with")
    segmenter = bundle if isinstance(bundle, Segmenter) else load_segmenter(bundle, device)
    result = segmenter.segment(image)
    if not result.found:
        raise NoTumourFoundError(f"NeoSeg found no tumour in {where}")
    return Volume(result.mask.array, image.spacing, image.origin, image.direction, {"path": f"NeoSeg({Path(str(where)).name})", "source": "neoseg"}), "neoseg"
