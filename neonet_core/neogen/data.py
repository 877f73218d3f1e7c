"""NeoGen data: datasets over a cohort's TLCR patches (:mod:`neonet_core.patches`) and the latent cache.

Latent cache: after the autoencoder, every patch is encoded once in each of its 8 flip variants
(all subsets of the three axes; the diffusion stages' augmentation) and stored as one safetensors
file (no pickle): ``mu``/``sigma`` (N, 8, C, d, h, w) float32, ``label`` (N,), ``tumour``/
``anatomy`` (N, D, H, W) uint8, ``val`` (N,) 1 for validation cases. Its metadata holds the case
ids and a key (autoencoder hash, preprocessing, split): a cache whose key differs is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neonet_core.augment import FLIPS, flip_variant
from neonet_core.fileio import atomic_path



class ImagePatches(torch.utils.data.Dataset):
    """Items ``{"image": (1, D, H, W), "label": ()}`` of a PatchSet, for the autoencoder (and on-the-fly encoding)."""

    def __init__(self, patches):
        self.patches = patches

    def __len__(self):
        return len(self.patches)

    def __getitem__(self, i):
        p = self.patches
        return {"image": torch.from_numpy(np.ascontiguousarray(p.images[i]))[None], "label": torch.tensor(max(int(p.labels[i]), 0))}


# --- latent cache -------------------------------------------------------------------------------
@torch.no_grad()
def encode_variants(ae, images: torch.Tensor, device, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, 1, D, H, W) -> (mu, sigma), each (N, len(FLIPS), C, d, h, w) on the CPU."""
    ae = ae.to(device).eval()
    mus, sigmas = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        per_variant = [ae.encode(flip_variant(batch, v, 2)) for v in range(len(FLIPS))]
        mus.append(torch.stack([m.float().cpu() for m, _ in per_variant], 1))
        sigmas.append(torch.stack([s.float().cpu() for _, s in per_variant], 1))
    return torch.cat(mus), torch.cat(sigmas)


def write_latent_cache(path: Path, ae, patches, val: np.ndarray, key: dict, device="cpu") -> Path:
    """Encode every patch of a PatchSet (all flip variants) and write the cache atomically; ``val`` (N,) bool."""
    from safetensors.torch import save_file

    mu, sigma = encode_variants(ae, torch.from_numpy(patches.images)[:, None], device)
    tensors = {
        "mu": mu.contiguous(),
        "sigma": sigma.contiguous(),
        "label": torch.from_numpy(patches.labels.astype(np.int64)),
        "tumour": torch.from_numpy(np.ascontiguousarray(patches.tumour)),
        "anatomy": torch.from_numpy(np.ascontiguousarray(patches.anatomy)),
        "val": torch.from_numpy(np.asarray(val, dtype=np.uint8)),
    }
    meta = {"key": json.dumps(key, sort_keys=True), "case_ids": json.dumps(list(patches.case_ids))}
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
