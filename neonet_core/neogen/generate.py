"""Generate synthetic patches from a NeoGen bundle and balance a training set 1:1.

Every synthetic patch is conditioned on a class label and on the masks of a real case of that
class (tumour + anatomy at patch resolution, :data:`MASK_CHANNELS`), optionally flipped / rotated by
90 degrees in the axial (H, W) plane for diversity. Patch ``i`` of a call starts from noise seeded
by ``(seed, i)``, so it does not depend on the batch size (RFlow and DDIM are deterministic after
that; DDPM's step noise comes from one generator per batch).
Synthetic cases live on the source case's TLCR patch grid (``roi.patch_geometry``) and hold
normalised intensities in [0, 1].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neonet_core.augment import orient
from neonet_core.errors import InputError, NeoNetError
from neonet_core.neogen.loaders import NeoGenModels, load_neogen
from neonet_core.patches import PatchSet
from neonet_core.progress import Progress


def sample_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 32-bit seed for item ``index`` of ``stream`` (0: start noise, 1: DDPM step noise) of a call seeded ``seed``."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


@torch.no_grad()
def generate_patches(
    bundle,
    masks: Sequence[tuple[np.ndarray, np.ndarray | None]],
    label: int,
    seed: int = 0,
    steps: int | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    scheduler: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """One synthetic image patch per (tumour, anatomy) mask pair: (N, D, H, W) float32 in [0, 1].

    bundle: path, Bundle or :class:`NeoGenModels`. masks: arrays of shape (patch_size,)*3 (anatomy may
    be None). label: 0 (PNI-) or 1 (PNI+). steps: sampling steps (default: the LDM config's).
    scheduler: override the sampler ("rflow" needs a model trained with rflow; ddpm/ddim share training).
    """
    from neonet_core.neogen.autoencoder import decode_latents
    from neonet_core.neogen.controlnet import controlled_unet_output, mask_channels
    from neonet_core.neogen.diffusion import build_scheduler, sample_latents

    m = bundle if isinstance(bundle, NeoGenModels) else load_neogen(bundle, device)
    if label not in (0, 1):
        raise ValueError(f"label must be 0 (PNI-) or 1 (PNI+), got {label!r}")
    expected = (m.patch_size,) * 3
    for n, (tumour, _) in enumerate(masks):
        if np.shape(tumour) != expected:
            raise ValueError(f"mask {n} has shape {np.shape(tumour)}; this bundle generates {expected} patches")
    ldm_cfg = m.ldm_cfg if scheduler is None else dataclasses.replace(m.ldm_cfg, scheduler=scheduler)
    steps = int(steps or ldm_cfg.sampling_steps)
    out = np.zeros((len(masks),) + expected, dtype=np.float32)
    with Progress(len(masks), "generate", mode=None if progress else "none") as bar:
        for start in range(0, len(masks), batch_size):
            chunk = masks[start : start + batch_size]
            noise = torch.stack([
                torch.randn((m.latent_channels, *m.latent_shape), generator=torch.Generator().manual_seed(sample_seed(seed, start + i)))
                for i in range(len(chunk))
            ]).to(m.device)
            cond = torch.from_numpy(np.stack([mask_channels(t, a) for t, a in chunk])).to(m.device)
            labels = torch.full((len(chunk),), int(label), dtype=torch.long, device=m.device)
            generator = torch.Generator(device=m.device).manual_seed(sample_seed(seed, start, stream=1))

            def denoise(x, t):
                return controlled_unet_output(m.unet, m.controlnet, x, t, labels, cond, m.conditioning_scale)

            z = sample_latents(denoise, build_scheduler(ldm_cfg, m.latent_shape), noise, steps, generator)
            out[start : start + len(chunk)] = decode_latents(m.ae, z / m.scale_factor)[:, 0].float().cpu().numpy()
            bar.update(len(chunk))
    return out


# --- balancing --------------------------------------------------------------------------------
def balance_counts(labels: Sequence[int]) -> tuple[int, int]:
    """(minority label, number of synthetic cases that make the classes 1:1) for training labels.

    Call it on a training fold only. Equal classes give (1, 0). Raises NeoNetError when a class is
    absent (there would be no real minority case to condition on).
    """
    labels = [int(v) for v in labels]
    n0, n1 = labels.count(0), labels.count(1)
    if len(labels) != n0 + n1:
        raise NeoNetError("balance_counts: labels must be 0 or 1 (every training case needs a label)")
    if n0 == 0 or n1 == 0:
        raise NeoNetError(f"cannot balance a training set with {n0} PNI- and {n1} PNI+ cases: both classes are needed")
    return (1, n0 - n1) if n1 <= n0 else (0, n1 - n0)


@dataclass(frozen=True)
class SyntheticPlan:
    """One synthetic case to make: the real source case, a mask transform, and its index."""

    index: int
    source: object  # manifest Case
    flips: tuple[int, ...]  # array axes (0, 1, 2) = (D, H, W) flipped
    rot90: int  # quarter turns in the (H, W) plane, applied after the flips


def transform_mask(array: np.ndarray, flips: tuple[int, ...], rot90: int) -> np.ndarray:
    """Flip ``array`` (D, H, W) along ``flips`` then rotate by ``rot90`` quarter turns in (H, W)."""
    return orient(array, flips, rot90, plane=(1, 2), spatial_start=0)


def plan_synthetic(sources: Sequence, count: int, seed: int, augment: bool = True) -> list[SyntheticPlan]:
    """``count`` plans cycling through ``sources`` (each used equally often, order seeded), random transforms."""
    if count > 0 and not sources:
        raise NeoNetError("no real source case to condition the synthetic patches on")
    rng = np.random.default_rng([seed, 1])
    sources = sorted(sources, key=lambda c: c.case_id)
    plans: list[SyntheticPlan] = []
    while len(plans) < count:
        for j in rng.permutation(len(sources)):
            if len(plans) == count:
                break
            flips = tuple(int(a) for a in range(3) if rng.random() < 0.5) if augment else ()
            rot = int(rng.integers(4)) if augment else 0
            plans.append(SyntheticPlan(len(plans), sources[int(j)], flips, rot))
    return plans


def plan_masks(plans: list[SyntheticPlan], sources: PatchSet) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (tumour, anatomy) conditioning masks (D, H, W) of each plan: its source's masks, transformed."""
    out = []
    for plan in plans:
        i = sources.case_ids.index(plan.source.case_id)
        out.append((transform_mask(sources.tumour[i], plan.flips, plan.rot90), transform_mask(sources.anatomy[i], plan.flips, plan.rot90)))
    return out


def synthesise(models: NeoGenModels, sources: PatchSet, plans: list[SyntheticPlan], label: int, seed: int = 0,
               steps: int | None = None, prefix: str = "syn") -> PatchSet:
    """One synthetic patch per plan, in memory: a PatchSet flagged synthetic, each row naming its source."""
    masks = plan_masks(plans, sources)
    images = generate_patches(models, masks, label, seed, steps) if plans else np.zeros((0,) + sources.images.shape[1:], np.float32)
    ids = [f"{prefix}{plan.index:04d}_{plan.source.case_id}" for plan in plans]
    patients = [sources.patient_ids[sources.case_ids.index(p.source.case_id)] for p in plans]
    return PatchSet(ids, patients, images, [int(label)] * len(plans), np.stack([m[0] for m in masks]) if masks else None,
                    np.stack([m[1] for m in masks]) if masks else None, np.ones(len(plans), bool), [p.source.case_id for p in plans])


def balance_patches(models: NeoGenModels, train: PatchSet, seed: int = 0, steps: int | None = None) -> PatchSet:
    """Synthetic minority patches that make the real *training* patches ``train`` 1:1, conditioned
    on their own masks only (pass a training fold: a validation case never becomes a source)."""
    from neonet_core.manifest import Case

    real = train.take(np.flatnonzero(~train.synthetic))
    minority, needed = balance_counts(real.labels.tolist())
    sources = [Case(c, None, None, None, minority, p) for c, p, y in zip(real.case_ids, real.patient_ids, real.labels) if y == minority]
    return synthesise(models, real, plan_synthetic(sources, needed, seed), minority, seed, steps)


def generate_cases(bundle, plans: list[SyntheticPlan], label: int, out_dir, seed: int = 0, steps: int | None = None,
                   device: str = "cpu", prefix: str = "syn") -> list:
    """Generate and write one synthetic case per plan; returns their manifest ``Case`` rows.

    Files under ``out_dir``: ``images/<id>.nii.gz``, ``masks/<id>_tumour.nii.gz``,
    ``masks/<id>_anatomy.nii.gz`` on the source's TLCR patch grid. Never overwrites a file.
    """
    from neonet_core.io import write_volume
    from neonet_core.manifest import Case
    from neonet_core.patches import extract_patches

    out_dir = Path(out_dir)
    models = bundle if isinstance(bundle, NeoGenModels) else load_neogen(bundle, device)
    unique = list({p.source.case_id: p.source for p in plans}.values())
    sources = extract_patches(unique, models.preprocess) if unique else PatchSet.empty()
    ids = [f"{prefix}{plan.index:04d}_{plan.source.case_id}" for plan in plans]
    for case_id in ids:
        for path in _case_paths(out_dir, case_id):
            if path.exists():
                raise InputError(path, "already exists; choose a new output folder (NeoNet never overwrites outputs)")
    made = synthesise(models, sources, plans, label, seed, steps, prefix)
    cases = []
    for i, plan in enumerate(plans):
        grid = sources.rois[sources.case_ids.index(plan.source.case_id)].patch_geometry(models.patch_size)
        image_path, tumour_path, anatomy_path = _case_paths(out_dir, made.case_ids[i])
        write_volume(grid.with_array(made.images[i].astype(np.float32)), image_path)
        write_volume(grid.with_array(made.tumour[i]), tumour_path)
        write_volume(grid.with_array(made.anatomy[i]), anatomy_path)
        cases.append(Case(made.case_ids[i], image_path, tumour_path, anatomy_path, int(label), plan.source.patient_id, True, plan.source.case_id))
    return cases


def _case_paths(out_dir: Path, case_id: str) -> tuple[Path, Path, Path]:
    return out_dir / "images" / f"{case_id}.nii.gz", out_dir / "masks" / f"{case_id}_tumour.nii.gz", out_dir / "masks" / f"{case_id}_anatomy.nii.gz"


def balance_cases(bundle, cases: Sequence, out_dir, seed: int = 0, steps: int | None = None, device: str = "cpu") -> list:
    """Synthetic minority cases that make the *training* ``cases`` 1:1 (conditioned on their own masks only).

    Pass a training fold: synthetic cases are made from these cases alone, so a validation case
    never becomes a source. Returns the synthetic ``Case`` rows (possibly none).
    """
    real = [c for c in cases if not c.synthetic]
    minority, needed = balance_counts([c.label for c in real])
    if needed == 0:
        return []
    plans = plan_synthetic([c for c in real if c.label == minority], needed, seed)
    return generate_cases(bundle, plans, minority, out_dir, seed, steps, device)


def balance(bundle, manifest, out_dir, seed: int = 0, steps: int | None = None, device: str = "cpu") -> Path:
    """Balance the training manifest 1:1: writes the synthetic cases and ``out_dir/manifest.csv``
    (the real cases followed by the synthetic ones). Returns the new manifest's path."""
    from neonet_core.manifest import read_manifest, write_manifest

    out_dir = Path(out_dir)
    target = out_dir / "manifest.csv"
    if target.exists():
        raise InputError(target, "already exists; choose a new output folder")
    cases = [c for c in read_manifest(manifest, require_labels=True, require_tumor_masks=True) if not c.synthetic]
    synthetic = balance_cases(bundle, cases, out_dir, seed, steps, device)
    return write_manifest(cases + synthetic, target)
