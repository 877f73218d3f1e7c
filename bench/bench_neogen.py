"""NeoGen speed on the tiny preset (CPU by default): training steps/s of every stage, cached latents
against encoding on the fly, and generation with RFlow (30 steps) against DDPM (1000 steps).

    .venv/bin/python bench/bench_neogen.py [--device cpu] [--threads N] [--cases 16]

Patches are in-memory phantoms (a sphere in a textured block; no files), networks untrained:
speed does not depend on the weights. Each figure is measured in this run, ratios against a
baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neonet_core.config import get_preset
from neonet_core.device import resolve_device
from neonet_core.engine import TrainConfig, Trainer
from neonet_core.neogen.controlnet import build_controlnet
from neonet_core.neogen.data import ImagePatches, LatentCache, PatchRecord, write_latent_cache
from neonet_core.neogen.generate import NeoGenModels, generate_patches
from neonet_core.neogen.stages import AEStage, ControlNetStage, LDMStage
from neonet_core.progress import set_default_mode


def phantom_records(n: int, size: int = 32, seed: int = 0) -> list[PatchRecord]:
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[:size, :size, :size]
    out = []
    for c in range(n):
        centre = size / 2 + rng.uniform(-3, 3, 3)
        tumour = ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) <= rng.uniform(9, 30)
        image = np.clip(0.6 + 0.05 * rng.standard_normal((size,) * 3) - 0.35 * tumour, 0, 1).astype(np.float32)
        anatomy = np.where(tumour, 4, 1).astype(np.uint8)
        out.append(PatchRecord(f"c{c}", f"p{c}", c % 2, image, tumour.astype(np.uint8), anatomy))
    return out


def steps_per_second(stage, data, tcfg: TrainConfig, folder: Path) -> float:
    """Optimiser steps per second of a full run (engine included; no validation, no checkpoints)."""
    trainer = Trainer(stage, data, None, tcfg, folder)
    start = time.perf_counter()
    result = trainer.fit()
    return result.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cases", type=int, default=16, help="patches in the training set")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--gen-patches", type=int, default=4, help="patches generated with RFlow 30 steps")
    parser.add_argument("--ddpm-patches", type=int, default=4, help="patches generated with DDPM 1000 steps (fewer is faster, but a smaller batch)")
    args = parser.parse_args()
    set_default_mode("none")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = get_preset("tiny")
    tcfg = TrainConfig(epochs=args.epochs, batch_size=4, lr=1e-4, device=args.device, checkpoint_every=10**9, log_every=10**9)
    records = phantom_records(args.cases)
    print(f"NeoGen tiny preset on {device} ({torch.get_num_threads()} threads), {args.cases} patches of 32^3, batch 4, "
          f"{args.epochs} epochs per stage")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        ae_stage = AEStage(cfg.ae)
        ae_rate = steps_per_second(ae_stage, ImagePatches(records), tcfg, tmp / "ae")
        print(f"autoencoder training:                {ae_rate:8.2f} steps/s")

        ae = ae_stage.ae.eval()
        start = time.perf_counter()
        write_latent_cache(tmp / "latents.safetensors", ae, records, np.zeros(len(records), bool), {}, device)
        cache_s = time.perf_counter() - start
        cache = LatentCache.read(tmp / "latents.safetensors")
        print(f"latent cache (8 flip variants each): {cache_s:8.2f} s for {len(records)} patches (once, after the autoencoder)")
        scale = cache.scale_factor()

        torch.manual_seed(0)
        cached = steps_per_second(LDMStage(cfg.ldm, 4, cache.latent_shape, scale), cache.dataset("train"), tcfg, tmp / "ldm")
        torch.manual_seed(0)
        on_the_fly = steps_per_second(LDMStage(cfg.ldm, 4, cache.latent_shape, scale, ae=ae), ImagePatches(records), tcfg, tmp / "ldm_fly")
        print(f"diffusion training, cached latents:  {cached:8.2f} steps/s")
        print(f"diffusion training, encode per batch:{on_the_fly:8.2f} steps/s   -> cached is {cached / on_the_fly:.2f}x faster")

        torch.manual_seed(0)
        ldm = LDMStage(cfg.ldm, 4, cache.latent_shape, scale)
        cn_stage = ControlNetStage(cfg.controlnet, cfg.ldm, cfg.ae, ldm.unet, cache.latent_shape, scale)
        cn_rate = steps_per_second(cn_stage, cache.dataset("train"), tcfg, tmp / "cn")
        print(f"ControlNet training (UNet frozen):   {cn_rate:8.2f} steps/s")

    models = NeoGenModels(ae.to(device), ldm.unet.to(device).eval(), cn_stage.controlnet.to(device).eval(), cfg.ldm,
                          1.0, scale, cache.latent_shape, 4, 32, cfg.preprocess, device)
    masks = [(r.tumour, r.anatomy) for r in records]
    rates = {}
    for name, count, steps in (("rflow", args.gen_patches, 30), ("ddpm", args.ddpm_patches, 1000)):
        chosen = [masks[i % len(masks)] for i in range(count)]
        start = time.perf_counter()
        generate_patches(dataclasses.replace(models), chosen, 1, seed=0, steps=steps, batch_size=4, scheduler=name, progress=False)
        rates[name] = count / (time.perf_counter() - start)
        print(f"generation, {name.upper():5s} {steps:4d} steps:       {rates[name]:8.3f} patches/s ({count} patches)")
    print(f"-> RFlow 30 steps generates {rates['rflow'] / rates['ddpm']:.1f}x more patches/s than DDPM 1000 steps")
    from _table import row

    row("NeoGen LDM training: cached latents vs encode per batch", cached, on_the_fly, "steps/s")
    row("NeoGen generation: RFlow 30 steps vs DDPM 1000 steps", rates["rflow"], rates["ddpm"], "patches/s")


if __name__ == "__main__":
    main()
