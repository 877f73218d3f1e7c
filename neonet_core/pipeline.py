"""The whole training pipeline into one bundle (``neonet train all``).

    NeoSeg (tumour localisation for new cases)
    -> NeoGen autoencoder -> latent diffusion model -> ControlNet
    -> 1:1 balancing with synthetic minority patches (from the classifier's inner-training cases)
    -> PattenNet (frozen NeoGen encoder + dual attention) with its decision threshold

Each stage already in the bundle is kept; an interrupted stage resumes from its checkpoint when
``resume`` is set. The result is one complete bundle: ``seg``, ``autoencoder``, ``ldm``,
``controlnet`` and ``cls`` networks, the threshold, class names and the training-cohort summary.
"""

from __future__ import annotations

from pathlib import Path

from neonet_core.config import NeoNetConfig, load_config
from neonet_core.errors import NeoNetError


def _has(bundle_dir: Path, network: str) -> bool:
    from neonet_core.bundle import load_bundle

    return (bundle_dir / "bundle.json").exists() and load_bundle(bundle_dir).has(network)


def train_all(manifest, config="tiny", bundle_dir="bundle", resume: bool = False, device: str | None = None,
              cv_dir=None, seg: bool = True) -> Path:
    """Train every stage into ``bundle_dir`` (see the module docstring); returns the bundle folder."""
    from neonet_core.neocls.cv import train_neogen
    from neonet_core.neocls.train import train_cls
    from neonet_core.neoseg.train import train_seg

    cfg = config if isinstance(config, NeoNetConfig) else load_config(str(config))
    bundle_dir = Path(bundle_dir)
    if (bundle_dir / "bundle.json").exists() and not resume:
        raise NeoNetError(f"{bundle_dir}: already holds a bundle; use --resume to finish it or a new folder")
    if device is not None:
        cfg = NeoNetConfig.from_dict(cfg.to_dict())
        for section in (cfg.seg, cfg.ae, cfg.ldm, cfg.controlnet, cfg.cls):
            section.train.device = device
    if seg and not _has(bundle_dir, "seg"):
        run = bundle_dir / "runs" / "seg"
        train_seg(manifest, cfg, bundle_dir, resume=(run / "checkpoint.pt").exists())
    train_neogen(Path(manifest), bundle_dir, cfg, generative=True, device=device)
    if not _has(bundle_dir, "cls"):
        train_cls(manifest, cfg, bundle_dir, resume=True, neogen=True, cv_dir=cv_dir, model="pattennet")
    return bundle_dir


__all__ = ["train_all"]
