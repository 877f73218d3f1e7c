"""Predict PNI for one case with a model bundle: localise, crop, classify, explain.

    image (Volume) [+ tumour mask]
      -> tumour: the user's mask when given (it always wins), else NeoSeg's (the bundle's ``seg``)
      -> TLCR patch (bundle's preprocessing) -> robust normalisation
      -> classifier: p(PNI) averaged over the 8 flip variants (TTA); their standard deviation is
         reported as ``uncertainty``
      -> Grad-CAM of the unflipped patch (see :mod:`neonet_core.neocls.pattennet`) mapped back onto
         the input grid (0 outside the ROI)
      -> assessable? (:mod:`neonet_core.assess`: spacing, ROI inside the image, contrast); when not,
         ``assessable`` is False and ``not_assessable_reasons`` says why (and a warning is issued)

``predict_case`` is the one-call API; ``load_predictor`` keeps the networks loaded for repeated calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neonet_core import __version__
from neonet_core.bundle import Bundle, load_bundle
from neonet_core.errors import BundleError
from neonet_core.tlcr import ROI
from neonet_core.volume import Volume


@dataclass
class Prediction:
    """The result for one case. ``attention`` (float32, [0, 1]) and ``tumour`` are on the input grid."""

    probability: float
    label: int
    threshold: float
    uncertainty: float
    roi: ROI
    attention: Volume
    tumour: Volume
    tumour_source: str  # "user" | "neoseg"
    timings: dict = field(default_factory=dict)  # seconds per stage
    bundle_name: str = ""
    bundle_version: str = ""
    class_names: list = field(default_factory=lambda: ["PNI-", "PNI+"])
    not_assessable_reasons: list = field(default_factory=list)  # empty: the input could be assessed

    @property
    def assessable(self) -> bool:
        return not self.not_assessable_reasons

    @property
    def class_name(self) -> str:
        return self.class_names[self.label]

    def to_dict(self) -> dict:
        """JSON-able summary (no arrays): what ``result.json`` holds."""
        return {
            "probability": self.probability,
            "label": self.label,
            "class_name": self.class_name,
            "threshold": self.threshold,
            "uncertainty": self.uncertainty,
            "uncertainty_definition": "standard deviation of p(PNI) over the test-time flip variants",
            "roi": self.roi.to_dict(),
            "tumour_source": self.tumour_source,
            "timings_s": self.timings,
            "bundle_name": self.bundle_name,
            "bundle_version": self.bundle_version,
            "library_version": __version__,
            "class_names": list(self.class_names),
            "assessable": self.assessable,
            "not_assessable_reasons": list(self.not_assessable_reasons),
        }


class Predictor:
    """A bundle's classifier (and NeoSeg, loaded on first need) on one device."""

    def __init__(self, bundle: Bundle | str | Path, device: str = "auto"):
        from neonet_core.config import NeoNetConfig
        from neonet_core.device import resolve_device
        from neonet_core.neocls.stage import NETWORK, build_from_network_config

        t0 = time.perf_counter()
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if not self.bundle.has(NETWORK):
            raise BundleError(self.bundle.path, "has no classifier; run `neonet train cls` (or `neonet train all`) into it")
        self.device = resolve_device(device)
        self.model = self.bundle.build(NETWORK, build_from_network_config).to(self.device)
        net_cfg = self.bundle.network_config(NETWORK)
        self.config = NeoNetConfig.from_dict({k: net_cfg[k] for k in ("cls", "ae", "preprocess")})
        info = self.bundle.info
        self.threshold = float(info.get("threshold", 0.5))
        self.class_names = list(info.get("class_names", ["PNI-", "PNI+"]))
        self.name = str(info.get("name") or self.bundle.path.name)
        self.version = str(info.get("version") or info.get("library_version", ""))
        self._segmenter = None
        self.load_s = time.perf_counter() - t0

    def segmenter(self):
        from neonet_core.neoseg.infer import load_segmenter

        if self._segmenter is None:
            if not self.bundle.has("seg"):
                raise BundleError(self.bundle.path, "has no NeoSeg network to find the tumour; give a tumour mask (--mask)")
            self._segmenter = load_segmenter(self.bundle, str(self.device))
        return self._segmenter

    def predict(self, image: Volume, tumour: Volume | None = None, tta: bool | None = None, on_stage=None) -> Prediction:
        """Predict one case; ``on_stage(name)`` is called as each of localise, crop, classify, attention ends."""
        from neonet_core.assess import not_assessable_reasons
        from neonet_core.neocls.data import model_input
        from neonet_core.neocls.models import get_classifier
        from neonet_core.neocls.pattennet import grad_cam
        from neonet_core.neocls.stage import predict_probabilities
        from neonet_core.neoseg.infer import localise
        from neonet_core.normalize import normalise_from_config
        from neonet_core.tlcr import patch_to_volume, tlcr_from_config

        tta = self.config.cls.tta if tta is None else tta
        timings = {}
        t = time.perf_counter()

        def done(stage: str) -> None:
            nonlocal t
            timings[stage] = time.perf_counter() - t
            if on_stage is not None:
                on_stage(stage)
            t = time.perf_counter()

        tumour, source = localise(image, tumour, None if tumour is not None else self.segmenter(), str(self.device))
        done("localise")
        crop = tlcr_from_config(image, tumour, None, self.config)
        patch = normalise_from_config(crop.image_patch, self.config).array.astype(np.float32)
        reasons = not_assessable_reasons(image, crop)
        done("crop")
        x = model_input(patch[None], crop.tumour_patch.array[None], get_classifier(self.config.cls.model).in_channels)
        p, spread = predict_probabilities(self.model, x, self.device, tta=tta)
        done("classify")
        _, cam = grad_cam(self.model, torch.from_numpy(x).to(self.device))
        attention = patch_to_volume(cam[0].cpu().numpy(), crop.roi, image)
        done("attention")  # Grad-CAM and its map back onto the input grid
        timings["total"] = sum(timings.values())
        if reasons:
            from neonet_core.progress import warn

            warn(f"{image.metadata.get('path', 'the image')}: not assessable: {'; '.join(reasons)}")
        probability = float(p[0])
        return Prediction(
            probability=probability,
            label=int(probability >= self.threshold),
            threshold=self.threshold,
            uncertainty=float(spread[0]),
            roi=crop.roi,
            attention=attention,
            tumour=tumour,
            tumour_source=source,
            timings=timings,
            bundle_name=self.name,
            bundle_version=self.version,
            class_names=self.class_names,
            not_assessable_reasons=reasons,
        )


_CACHE: dict[tuple, Predictor] = {}


def load_predictor(bundle_path: str | Path | Bundle, device: str = "auto") -> Predictor:
    """A :class:`Predictor` for the bundle, cached per (bundle folder, device) for repeated calls."""
    path = Path(bundle_path.path if isinstance(bundle_path, Bundle) else bundle_path)
    stamped = path if path.is_file() else path / "bundle.json"  # a .zip, or a folder's bundle.json
    stamp = stamped.stat().st_mtime_ns if stamped.is_file() else 0  # a rewritten bundle is reloaded
    key = (str(path.resolve()), str(device), stamp)
    if key not in _CACHE:
        _CACHE[key] = Predictor(bundle_path, device)
    return _CACHE[key]


def predict_case(image: Volume, tumour: Volume | None, bundle: Bundle | str | Path, device: str = "auto", tta: bool = True) -> Prediction:
    """Predict one case (see the module docstring); the bundle's networks are cached between calls."""
    predictor = load_predictor(bundle, device)
    first = predictor.load_s
    predictor.load_s = 0.0
    result = predictor.predict(image, tumour, tta)
    result.timings = {"load": first, **result.timings}
    return result


__all__ = ["Prediction", "Predictor", "predict_case", "load_predictor"]
