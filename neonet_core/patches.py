"""The TLCR patches of a cohort: cropped once per run, cached, shared by NeoGen and the classifiers.

A :class:`PatchSet` holds, per case, the normalised image patch (D, H, W) float32 in [0, 1], the
tumour and anatomy masks at patch resolution (D, H, W) uint8, the label (-1 when unknown), the
patient, whether the patch is synthetic (and from which real case), and for real patches the ROI
of the crop (kept in memory only: it places a patch back on its scanner grid).

Preprocessing is per patch (TLCR crop + the patch's own robust percentiles, see
:mod:`neonet_core.normalize`): nothing is pooled over cases, so a cached set can be sliced into any
training / validation split without leakage.

Random crops (:func:`cohort_crops`): label-free training data for the NeoGen autoencoder. Each case
gives ``per_case`` cubes of the TLCR's physical size and voxel grid, centred on random voxels inside
the body, normalised like a TLCR patch. Their case ids are ``<case_id>#crop<j>`` (patient, label and
masks those of the case); :func:`crops_of_cases` picks the crops of a split's cases. Crops are never
classifier inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
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


def _cached(cache_dir, name: str, key_data, build) -> PatchSet:
    """``build()``, cached as ``cache_dir/<name>.npz`` + ``<name>.key`` (the hash of ``key_data``;
    a changed key rebuilds). ``cache_dir`` None: no cache."""
    if cache_dir is None:
        return build()
    path, key_file = Path(cache_dir) / f"{name}.npz", Path(cache_dir) / f"{name}.key"
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    if path.exists() and key_file.exists() and key_file.read_text().strip() == key:
        return PatchSet.load(path)
    patches = build()
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    patches.save(path)
    write_text_atomic(key_file, key + "\n")
    return patches


def _cases_key(cases) -> list:
    return [(c.case_id, str(c.image), str(c.tumor_mask), str(c.anatomy_mask)) for c in cases]


def cohort_patches(cases, cfg, cache_dir=None) -> PatchSet:
    """The patches of ``cases``, cached as ``cache_dir/patches.npz`` keyed by the preprocessing and
    the case files (a changed key recrops). ``cfg``: NeoNetConfig or PreprocessConfig."""
    preprocess = getattr(cfg, "preprocess", cfg)
    return _cached(cache_dir, "patches", [dataclasses.asdict(preprocess), _cases_key(cases)],
                   lambda: extract_patches(cases, preprocess))


# --- random crops (the autoencoder's label-free training data) ----------------------------------
CROP_SEPARATOR = "#crop"
_CROP_VERSION = 1  # part of the cache key: bump when the crop rule changes


def crop_centres(image, roi_mm, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random crop centres (count, 3) in LPS mm: voxel centres inside the body
    (:func:`neonet_core.phantom.background.body_mask`), where possible far enough from the image
    edges that a cube of ``roi_mm`` lies inside the image (else anywhere in the body, else anywhere)."""
    from neonet_core.phantom.background import body_mask

    array = image.array
    floor, top = (float(v) for v in np.percentile(array, [1, 99]))
    body = body_mask(array.astype(np.float32, copy=False), floor, top) if top > floor else np.ones(array.shape, bool)
    half = np.broadcast_to(np.asarray(roi_mm, dtype=np.float64), (3,))[::-1] / 2.0 / np.asarray(image.spacing)[::-1]  # (k, j, i)
    inside = np.zeros(array.shape, dtype=bool)
    box = []
    for n, h in zip(array.shape, half):
        lo, hi = int(np.ceil(h - 0.5)), int(np.floor(n - 0.5 - h))
        box.append(slice(lo, hi + 1) if lo <= hi else slice((n - 1) // 2, n // 2 + 1))  # too short: the middle
    inside[tuple(box)] = True
    for candidates in (body & inside, body, np.ones(array.shape, bool)):
        flat = np.flatnonzero(candidates)
        if flat.size:
            break
    picked = rng.choice(flat, size=count, replace=flat.size < count)
    k, j, i = np.unravel_index(picked, array.shape)
    return image.index_to_physical(np.stack([i, j, k], 1).astype(np.float64))


def case_crops(case, cfg, per_case: int, seed: int) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """(ROIs, images, tumour, anatomy) of ``per_case`` random crops of one case (read once), each the
    TLCR's cube (roi_mm, patch_size) on the image's axes, padded and normalised as a TLCR patch.
    Deterministic for (seed, case_id)."""
    from neonet_core.manifest import load_case
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import ROI, background_value, crop_patch

    preprocess = getattr(cfg, "preprocess", cfg)
    image, tumour, anatomy = load_case(case)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(case.case_id.encode())])
    background = background_value(image)
    rois, images, tumours, anatomies = [], [], [], []
    for centre in crop_centres(image, preprocess.roi_mm, per_case, rng):
        roi = ROI(centre, preprocess.roi_mm, image.direction)
        images.append(normalise_from_config(crop_patch(image, roi, preprocess.patch_size, "linear", background), preprocess).array)
        masks = [crop_patch(m, roi, preprocess.patch_size, "nearest", 0).array if m is not None else None for m in (tumour, anatomy)]
        masks = [np.zeros(images[-1].shape, np.uint8) if m is None else m.astype(np.uint8) for m in masks]
        tumours.append(masks[0])
        anatomies.append(masks[1])
        rois.append(roi)
    return rois, np.stack(images).astype(np.float32), np.stack(tumours), np.stack(anatomies)


def extract_crops(cases, cfg, per_case: int, seed: int) -> PatchSet:
    """``per_case`` random crops of each real case among ``cases`` (see :func:`case_crops`)."""
    real = [c for c in cases if not c.synthetic]
    if per_case < 1 or not real:
        return PatchSet.empty((getattr(cfg, "preprocess", cfg).patch_size,) * 3)
    ids, patients, labels, rois, images, tumours, anatomies = [], [], [], [], [], [], []
    with Progress(len(real), "crops") as bar:
        for case in real:
            r, im, t, a = case_crops(case, cfg, per_case, seed)
            ids += [f"{case.case_id}{CROP_SEPARATOR}{j}" for j in range(per_case)]
            patients += [case.patient_id] * per_case
            labels += [-1 if case.label is None else int(case.label)] * per_case
            rois += r
            images.append(im)
            tumours.append(t)
            anatomies.append(a)
            bar.update(1)
    return PatchSet(ids, patients, np.concatenate(images), labels, np.concatenate(tumours), np.concatenate(anatomies), rois=rois)


def cohort_crops(cases, cfg, per_case: int, seed: int, cache_dir=None) -> PatchSet:
    """``per_case`` random crops of every case (the autoencoder's label-free training data; never a
    classifier's input), cached as ``cache_dir/crops.npz`` keyed by the preprocessing, ``per_case``,
    ``seed`` and the case files. ``cfg``: NeoNetConfig or PreprocessConfig."""
    preprocess = getattr(cfg, "preprocess", cfg)
    key = [dataclasses.asdict(preprocess), int(per_case), int(seed), _CROP_VERSION, _cases_key(cases)]
    return _cached(cache_dir, "crops", key, lambda: extract_crops(cases, preprocess, per_case, seed))


def crop_source(case_id: str) -> str:
    """The case a crop came from (``case_000#crop3`` -> ``case_000``)."""
    return case_id.rpartition(CROP_SEPARATOR)[0] or case_id


def crops_of_cases(crops: PatchSet, cases) -> PatchSet:
    """The crops of manifest ``cases`` (anything with a ``case_id``), in the crops' order."""
    wanted = {c.case_id for c in cases}
    return crops.take([i for i, c in enumerate(crops.case_ids) if crop_source(c) in wanted])


__all__ = ["Patch", "PatchSet", "case_patch", "extract_patches", "cohort_patches", "cohort_crops", "extract_crops",
           "case_crops", "crop_centres", "crops_of_cases", "crop_source", "CROP_SEPARATOR"]
