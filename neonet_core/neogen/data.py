"""NeoGen data: TLCR patches of a cohort, a patient-level validation split, and the latent cache.

Patches: each case's TLCR crop (:func:`neonet_core.tlcr.tlcr_from_config`), image normalised to
[0, 1] (:func:`neonet_core.normalize.normalise_from_config`), masks at patch resolution.

Latent cache: after the autoencoder, every patch is encoded once in each of its 8 flip variants
(all subsets of the three axes; the diffusion stages' augmentation) and stored as one safetensors
file (no pickle): ``mu``/``sigma`` (N, 8, C, d, h, w) float32, ``label`` (N,), ``tumour``/
``anatomy`` (N, D, H, W) uint8, ``val`` (N,) 1 for validation cases. Its metadata holds the case
ids and a key (autoencoder hash, preprocessing, split): a cache whose key differs is rebuilt.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path
from neonet_core.progress import Progress

FLIPS: tuple[tuple[int, ...], ...] = tuple(c for r in range(4) for c in itertools.combinations((0, 1, 2), r))


@dataclass
class PatchRecord:
    """One case's training patch. image: (D, H, W) float32 in [0, 1]; tumour/anatomy: (D, H, W) uint8."""

    case_id: str
    patient_id: str
    label: int
    image: np.ndarray
    tumour: np.ndarray
    anatomy: np.ndarray
    roi: object = None  # neonet_core.tlcr.ROI of the crop


def case_patch(case, cfg):
    """(TLCRResult, normalised image array) of one manifest case; ``cfg`` a NeoNetConfig or PreprocessConfig."""
    from neonet_core.manifest import load_case
    from neonet_core.normalize import normalise_from_config
    from neonet_core.tlcr import tlcr_from_config

    image, tumour, anatomy = load_case(case)
    if tumour is None:
        raise NeoNetError(f"{case.image}: case {case.case_id} has no tumour mask; NeoGen needs one to crop and condition")
    crop = tlcr_from_config(image, tumour, anatomy, cfg)
    return crop, normalise_from_config(crop.image_patch, cfg).array.astype(np.float32)


def extract_patches(cases, cfg) -> list[PatchRecord]:
    """TLCR patches of every real, labelled case (synthetic cases are skipped)."""
    records = []
    real = [c for c in cases if not c.synthetic]
    with Progress(len(real), "patches") as bar:
        for case in real:
            crop, image = case_patch(case, cfg)
            anatomy = crop.anatomy_patch.array if crop.anatomy_patch is not None else np.zeros_like(crop.tumour_patch.array)
            label = -1 if case.label is None else int(case.label)
            records.append(PatchRecord(case.case_id, case.patient_id, label, image, crop.tumour_patch.array.astype(np.uint8), anatomy.astype(np.uint8), crop.roi))
            bar.update(1)
    if not records:
        raise NeoNetError("no real cases in the manifest to train NeoGen on")
    return records


def split_by_patient(patient_ids: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (N,) of validation items: ``round(val_fraction * patients)`` whole patients (>= 1 if
    there are at least 2 patients and val_fraction > 0), chosen by a seeded permutation."""
    patients = sorted(set(patient_ids))
    n_val = int(round(val_fraction * len(patients)))
    if val_fraction > 0 and len(patients) >= 2:
        n_val = min(max(n_val, 1), len(patients) - 1)
    order = np.random.default_rng([seed, 7919]).permutation(len(patients))
    held = {patients[i] for i in order[:n_val]}
    return np.array([p in held for p in patient_ids], dtype=bool)


class ImagePatches(torch.utils.data.Dataset):
    """Items ``{"image": (1, D, H, W), "label": ()}`` for the autoencoder (and on-the-fly encoding)."""

    def __init__(self, records: list[PatchRecord]):
        self.records = records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        r = self.records[i]
        return {"image": torch.from_numpy(r.image)[None], "label": torch.tensor(max(r.label, 0))}


def flip(x: torch.Tensor, variant: int, spatial_start: int) -> torch.Tensor:
    """Apply flip variant ``variant`` (index into FLIPS) to the 3 spatial axes starting at ``spatial_start``."""
    axes = [spatial_start + a for a in FLIPS[variant]]
    return torch.flip(x, axes) if axes else x


# --- latent cache -------------------------------------------------------------------------------
@torch.no_grad()
def encode_variants(ae, images: torch.Tensor, device, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, 1, D, H, W) -> (mu, sigma), each (N, len(FLIPS), C, d, h, w) on the CPU."""
    ae = ae.to(device).eval()
    mus, sigmas = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        per_variant = [ae.encode(flip(batch, v, 2)) for v in range(len(FLIPS))]
        mus.append(torch.stack([m.float().cpu() for m, _ in per_variant], 1))
        sigmas.append(torch.stack([s.float().cpu() for _, s in per_variant], 1))
    return torch.cat(mus), torch.cat(sigmas)


def write_latent_cache(path: Path, ae, records: list[PatchRecord], val: np.ndarray, key: dict, device="cpu") -> Path:
    """Encode every patch (all flip variants) and write the cache atomically."""
    from safetensors.torch import save_file

    images = torch.from_numpy(np.stack([r.image for r in records]))[:, None]
    mu, sigma = encode_variants(ae, images, device)
    tensors = {
        "mu": mu.contiguous(),
        "sigma": sigma.contiguous(),
        "label": torch.tensor([r.label for r in records], dtype=torch.int64),
        "tumour": torch.from_numpy(np.stack([r.tumour for r in records])),
        "anatomy": torch.from_numpy(np.stack([r.anatomy for r in records])),
        "val": torch.from_numpy(np.asarray(val, dtype=np.uint8)),
    }
    meta = {"key": json.dumps(key, sort_keys=True), "case_ids": json.dumps([r.case_id for r in records])}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


@dataclass
class LatentCache:
    """The cached latents of a cohort (see the module docstring for the tensors)."""

    tensors: dict[str, torch.Tensor]
    case_ids: list[str]
    key: dict

    @classmethod
    def read(cls, path: str | Path) -> "LatentCache":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return cls(load_file(str(path)), json.loads(meta.get("case_ids", "[]")), json.loads(meta.get("key", "{}")))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.tensors["mu"].shape[-3:])

    @property
    def latent_channels(self) -> int:
        return int(self.tensors["mu"].shape[2])

    def indices(self, split: str) -> np.ndarray:
        val = self.tensors["val"].numpy().astype(bool)
        return np.flatnonzero(val if split == "val" else ~val)

    def scale_factor(self) -> float:
        """1 / std of the training latents (all flip variants): diffusion runs on unit-variance latents."""
        mu = self.tensors["mu"][torch.from_numpy(self.indices("train"))]
        return float(1.0 / mu.float().std().clamp_min(1e-6))

    def dataset(self, split: str) -> "LatentPatches":
        return LatentPatches(self, self.indices(split))


class LatentPatches(torch.utils.data.Dataset):
    """Items ``{"mu", "sigma": (V, C, d, h, w), "label": (), "cond": (len(MASK_CHANNELS), D, H, W)}``."""

    def __init__(self, cache: LatentCache, indices: np.ndarray):
        self.cache, self.indices = cache, [int(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        from neonet_core.neogen.controlnet import mask_channels

        n, t = self.indices[i], self.cache.tensors
        cond = mask_channels(t["tumour"][n].numpy(), t["anatomy"][n].numpy())
        return {"mu": t["mu"][n], "sigma": t["sigma"][n], "label": t["label"][n], "cond": torch.from_numpy(cond)}


def pick_variant(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one flip variant per item and a latent z = mu + sigma * eps (torch global RNG).

    Returns (z (B, C, d, h, w), variants (B,)).
    """
    mu, sigma = batch["mu"], batch["sigma"]
    b = torch.arange(mu.shape[0], device=mu.device)
    v = torch.randint(0, mu.shape[1], (mu.shape[0],), device=mu.device)
    return mu[b, v] + sigma[b, v] * torch.randn_like(mu[b, v]), v
