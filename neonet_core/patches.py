"""The TLCR patches of a cohort: cropped once per run, cached, shared by NeoGen and the classifiers.

A :class:`PatchSet` holds, per case, the normalised image patch (D, H, W) float32 in [0, 1], the
tumour and anatomy masks at patch resolution (D, H, W) uint8, the label (-1 when unknown), the
patient, whether the patch is synthetic (and from which real case), and for real patches the ROI
of the crop (kept in memory only: it places a patch back on its scanner grid).

Preprocessing is per patch (TLCR crop + the patch's own robust percentiles, see
:mod:`neonet_core.normalize`): nothing is pooled over cases, so a cached set can be sliced into any
training / validation split without leakage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path, write_text_atomic
from neonet_core.progress import Progress


class Patch(NamedTuple):
    """One case of a PatchSet: image (D, H, W) float32, tumour / anatomy (D, H, W) uint8."""

    case_id: str
    patient_id: str
    label: int
    image: np.ndarray
    tumour: np.ndarray
    anatomy: np.ndarray


@dataclass
class PatchSet:
    """Patches of N cases. images: (N, D, H, W) float32; tumour, anatomy: (N, D, H, W) uint8;
    labels: (N,) int64 (-1 unknown); synthetic: (N,) bool; sources: the real case each synthetic
    patch was conditioned on ("" for real ones); rois: the crop ROIs of real patches (or None)."""

    case_ids: list[str]
    patient_ids: list[str]
    images: np.ndarray
    labels: np.ndarray
    tumour: np.ndarray = None
    anatomy: np.ndarray = None
    synthetic: np.ndarray = None
    sources: list[str] = field(default=None)
    rois: list = field(default=None, repr=False)

    def __post_init__(self):
        n = len(self.case_ids)
        self.images = np.asarray(self.images, dtype=np.float32).reshape((n,) + np.shape(self.images)[1:])
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(n)
        empty = np.zeros(self.images.shape, dtype=np.uint8)
        self.tumour = empty if self.tumour is None else np.asarray(self.tumour, dtype=np.uint8)
        self.anatomy = np.zeros_like(self.tumour) if self.anatomy is None else np.asarray(self.anatomy, dtype=np.uint8)
        self.synthetic = np.zeros(n, dtype=bool) if self.synthetic is None else np.asarray(self.synthetic, dtype=bool)
        self.sources = [""] * n if self.sources is None else list(self.sources)
        self.rois = [None] * n if self.rois is None else list(self.rois)

    def __len__(self):
        return len(self.case_ids)

    @classmethod
    def empty(cls, patch_shape=(1, 1, 1)) -> "PatchSet":
        return cls([], [], np.zeros((0,) + tuple(patch_shape), np.float32), [])

    def items(self) -> list[Patch]:
        """The patches one by one."""
        return [Patch(c, p, int(y), im, t, a) for c, p, y, im, t, a in
                zip(self.case_ids, self.patient_ids, self.labels, self.images, self.tumour, self.anatomy)]

    def take(self, index) -> "PatchSet":
        """The patches at integer positions ``index``."""
        idx = [int(i) for i in index]
        return PatchSet([self.case_ids[i] for i in idx], [self.patient_ids[i] for i in idx], self.images[idx], self.labels[idx],
                        self.tumour[idx], self.anatomy[idx], self.synthetic[idx], [self.sources[i] for i in idx], [self.rois[i] for i in idx])

    def select(self, case_ids) -> "PatchSet":
        """The patches of ``case_ids``, in that order."""
        index = {c: i for i, c in enumerate(self.case_ids)}
        missing = [c for c in case_ids if c not in index]
        if missing:
            raise NeoNetError(f"no patch for case(s) {', '.join(missing[:5])}")
        return self.take([index[c] for c in case_ids])

    def of_cases(self, cases) -> "PatchSet":
        """The patches of manifest ``cases`` (anything with a ``case_id``)."""
        return self.select([c.case_id for c in cases])

    def __add__(self, other: "PatchSet") -> "PatchSet":
        if len(other) == 0:
            return self
        if len(self) == 0:
            return other
        return PatchSet(self.case_ids + other.case_ids, self.patient_ids + other.patient_ids,
                        np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]),
                        np.concatenate([self.tumour, other.tumour]), np.concatenate([self.anatomy, other.anatomy]),
                        np.concatenate([self.synthetic, other.synthetic]), self.sources + other.sources, self.rois + other.rois)

    def save(self, path: str | Path) -> Path:
        """Write everything but the ROIs to one ``.npz`` (atomically; read back without pickle)."""
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, images=self.images, labels=self.labels, tumour=self.tumour, anatomy=self.anatomy,
                         synthetic=self.synthetic, case_ids=np.asarray(self.case_ids, dtype=str),
                         patient_ids=np.asarray(self.patient_ids, dtype=str), sources=np.asarray(self.sources, dtype=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "PatchSet":
        with np.load(path, allow_pickle=False) as z:
            return cls([str(c) for c in z["case_ids"]], [str(p) for p in z["patient_ids"]], z["images"], z["labels"],
                       z["tumour"], z["anatomy"], z["synthetic"], [str(s) for s in z["sources"]])


def case_patch(case, cfg):
    """(TLCRResult, normalised image (D, H, W) float32) of one manifest case; ``cfg`` a NeoNetConfig or PreprocessConfig."""
    from neonet_core.manifest import load_case
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import tlcr_from_config

    image, tumour, anatomy = load_case(case)
    if tumour is None:
        raise NeoNetError(f"{case.image}: case {case.case_id} has no tumour mask; a TLCR patch needs one")
    crop = tlcr_from_config(image, tumour, anatomy, cfg)
    return crop, normalise_from_config(crop.image_patch, cfg).array.astype(np.float32)


def extract_patches(cases, cfg) -> PatchSet:
    """The TLCR patches of the real cases among ``cases`` (synthetic rows are skipped)."""
    real = [c for c in cases if not c.synthetic]
    if not real:
        raise NeoNetError("no real (non-synthetic) case to crop")
    images, tumours, anatomies, rois = [], [], [], []
    with Progress(len(real), "patches") as bar:
        for case in real:
            crop, image = case_patch(case, cfg)
            tumour = crop.tumour_patch.array.astype(np.uint8)
            images.append(image)
            tumours.append(tumour)
            anatomies.append(crop.anatomy_patch.array.astype(np.uint8) if crop.anatomy_patch is not None else np.zeros_like(tumour))
            rois.append(crop.roi)
            bar.update(1)
    labels = [-1 if c.label is None else int(c.label) for c in real]
    return PatchSet([c.case_id for c in real], [c.patient_id for c in real], np.stack(images), labels,
                    np.stack(tumours), np.stack(anatomies), rois=rois)


def cohort_patches(cases, cfg, cache_dir=None) -> PatchSet:
    """The patches of ``cases``, cached as ``cache_dir/patches.npz`` keyed by the preprocessing and
    the case files (a changed key recrops). ``cfg``: NeoNetConfig or PreprocessConfig."""
    if cache_dir is None:
        return extract_patches(cases, cfg)
    preprocess = getattr(cfg, "preprocess", cfg)
    path, key_file = Path(cache_dir) / "patches.npz", Path(cache_dir) / "patches.key"
    key = hashlib.sha256(json.dumps([dataclasses.asdict(preprocess), [(c.case_id, str(c.image), str(c.tumor_mask), str(c.anatomy_mask))
                                                                      for c in cases]], sort_keys=True).encode()).hexdigest()[:16]
    if path.exists() and key_file.exists() and key_file.read_text().strip() == key:
        return PatchSet.load(path)
    patches = extract_patches(cases, preprocess)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    patches.save(path)
    write_text_atomic(key_file, key + "\n")
    return patches


__all__ = ["Patch", "PatchSet", "case_patch", "extract_patches", "cohort_patches"]
