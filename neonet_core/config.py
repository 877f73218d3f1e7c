"""Typed configuration and presets. Every hyper-parameter lives here, never in code.

A config is a tree of dataclasses; ``to_dict``/``from_dict`` round-trip it through JSON so a
bundle alone can rebuild its models. Presets: ``tiny`` (CPU, CI, 32^3 patches) and ``paper``
(GPU, 64^3 patches).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from neonet_core.augment import AugmentConfig
from neonet_core.engine import TrainConfig

TRAINED_SECTIONS = ("seg", "ae", "ldm", "controlnet", "cls")  # the sections with a ``train`` schedule


@dataclass
class PreprocessConfig:
    """TLCR crop and intensity normalisation (see :mod:`neonet_core.tlcr`, :mod:`neonet_core.normalize`)."""

    # edge of the physical cube centred on the tumour: 48 mm at 32^3 = 1.5 mm voxels (at 64 mm the plain CNN's
    # phantom fold AUCs fell from 0.84-0.98 to 0.54-0.65: the peritumoral PNI signal needs the resolution)
    roi_mm: float = 48.0
    patch_size: int = 32  # isotropic voxels per edge of the resampled patch
    component: str = "largest"  # "largest" connected tumour component, or "all"
    lower_percentile: float = 0.5  # robust normalisation: this percentile -> 0
    upper_percentile: float = 99.5  # and this one -> 1 (computed inside the body, see normalize.py)


# Each stage owns one section below; edit only your stage's section.


@dataclass
class SegConfig:
    """NeoSeg: tumour (+ optional anatomy) segmentation at a coarse isotropic resolution.

    The network is a MONAI ``UNet`` (``channels`` per level, stride 2 between levels).
    """

    spacing_mm: float = 2.0  # isotropic working resolution
    channels: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = 1
    predict_anatomy: bool = False  # also predict liver / bile duct / vessel (labels.ANATOMY_LABELS)
    roi_size: tuple[int, int, int] = (48, 48, 48)  # training crop and sliding-window size (voxels, D H W)
    sw_overlap: float = 0.25
    sw_batch_size: int = 1
    threshold: float = 0.5  # on the tumour probability
    min_component_ml: float = 0.05  # tumour components smaller than this are dropped
    pos_fraction: float = 0.8  # share of training crops centred on a tumour voxel
    # random flips of each crop and gain/offset of its intensities (the crop's label map follows the geometry)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotate_deg=0.0))
    # Tiny defaults measured by bench/neoseg_quality.py (48 train cases): held-out Dice 0.84, 95 % within 5 mm.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=50, batch_size=2, lr=3e-3))


@dataclass
class AEConfig:
    """NeoGen autoencoder (MONAI AutoencoderKL): ``len(channels) - 1`` stride-2 stages (3 levels = 4x)."""

    channels: tuple[int, ...] = (8, 16, 32)
    latent_channels: int = 8
    num_res_blocks: int = 1
    norm_num_groups: int = 8  # must divide every entry of channels
    with_nonlocal_attn: bool = False  # self-attention at the bottleneck (costly on CPU)
    kl_weight: float = 1e-6
    adversarial_weight: float = 0.0  # 0 disables the patch discriminator
    adversarial_warmup_epochs: int = 5
    discriminator_channels: int = 32
    augment: AugmentConfig = field(default_factory=AugmentConfig.flips)
    # random crops of every training volume (the TLCR's cube, centred in the body; no labels needed),
    # trained on beside the TLCR patches: neonet_core.patches.cohort_crops. Held-out PSNR on the 128-case
    # phantom (102 training cases + 408 crops, 26 patients held out; `neonet train ae --epochs N`):
    # 20 epochs 24.6 dB, 30 epochs (3810 steps, the default) 26.4 dB (README "Quality"). The bench and
    # the demo run 3 and 6 epochs to fit their time budgets.
    crops_per_case: int = 4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=4, lr=2e-3, lr_schedule="cosine",
                                                                   warmup_fraction=0.05))


@dataclass
class LDMConfig:
    """NeoGen class-conditional latent diffusion UNet + its scheduler."""

    channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 1
    num_head_channels: int = 16
    norm_num_groups: int = 8  # must divide every entry of channels
    scheduler: str = "rflow"  # rflow | ddpm | ddim
    num_train_timesteps: int = 1000
    sampling_steps: int = 30
    rflow_sample_method: str = "logit-normal"  # training timestep distribution: uniform | logit-normal
    beta_schedule: str = "scaled_linear_beta"  # ddpm/ddim noise schedule
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=50, batch_size=8, lr=2e-4))


@dataclass
class ControlNetConfig:
    """NeoGen ControlNet conditioned on one-hot tumour + anatomy masks.

    ``conditioning_channels``: channels after each stride-2 stage of the mask encoder; one entry per
    autoencoder downsampling (two entries = the AE's 4x).
    """

    conditioning_channels: tuple[int, ...] = (16, 32)  # two stride-2 stages = the AE's 4x
    conditioning_scale: float = 1.0
    tumour_loss_weight: float = 1.0  # >1 weights the loss inside the tumour
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=8, lr=2e-4))


@dataclass
class ClsConfig:
    """NeoCls: PattenNet (frozen AE encoder + dual attention blocks) or a baseline (see neonet_core/neocls/models.py)."""

    # a name in the classifier registry (neonet_core.neocls.models.CLASSIFIERS). The tiny preset's default
    # is the plain CNN on the image and the tumour mask, without NeoGen balancing: the better model in
    # this repository's comparison (README "Quality"); the paper preset keeps PattenNet + NeoGen
    model: str = "cnn"
    neogen: bool = False  # `train cls` / `train all`: balance the training patches 1:1 with NeoGen synthetic ones
    num_dab: int = 1  # dual attention blocks; 0 = no DAB (ablation)
    dab_reduction: int = 8  # query/key channels = C / this
    freeze_encoder: bool = True  # False = fine-tune the AE encoder too (ablation)
    # AE encoder blocks used; 0 = all before the latent projection (the deepest features: the paper
    # preset). Tiny uses 2 (conv_in + first residual block, full resolution): on the phantom, PattenNet
    # on the deepest features of the minutes-trained CPU autoencoder did not fit its training set.
    encoder_blocks: int = 2
    # "blocks": the output of the first encoder_blocks blocks; "multiscale": the whole frozen encoder,
    # the last block of every resolution level max-pooled to the deepest grid and concatenated
    encoder_features: str = "blocks"
    adapter_channels: int = 32  # conv + BatchNorm + ReLU before the DABs (as in DANet); 0 = none
    adapter_layers: int = 1  # such layers at the deepest grid, after the max-pool stages that reach it
    dropout: float = 0.2
    balance_loss: bool = True  # weight positives by n_neg / n_pos in the loss (1 once NeoGen balanced the classes)
    # flips, applied alike to real and synthetic patches. On the 128-case phantom (fold 0 of 5, plain CNN,
    # this protocol) held-out AUC was 0.82 with flips only, 0.69 adding +/-2-voxel shifts and 0.53 with
    # the whole lossless set (AugmentConfig.lossless: + in-plane quarter turns, gain/offset 0.1): the
    # nerve fibres the PNI extensions follow run in anatomical directions, so the patch's orientation
    # and position carry signal that turns and shifts destroy (README "Quality")
    augment: AugmentConfig = field(default_factory=AugmentConfig.flips)
    tta: bool = True  # predict: average the 8 flip variants, spread = uncertainty
    # with synthetic patches in training: swap real majority-class patches for their autoencoder round
    # trip as often as synthetic (decoded) patches appear in the minority class (neocls/stage.py)
    round_trip: bool = True
    # warm-up + cosine decay and the EMA of the weights at the end of the run (no best-epoch pick on a
    # few validation patients: on the phantom that pick was noise, see README "Quality")
    train: TrainConfig = field(default_factory=lambda: cls_schedule(epochs=40, lr=3e-3))


def cls_schedule(epochs: int, lr: float) -> TrainConfig:
    """The classifier's training protocol: AdamW, 5 % linear warm-up, cosine decay, weight EMA (0.99
    per step), the final (EMA) weights published."""
    return TrainConfig(epochs=epochs, batch_size=8, lr=lr, weight_decay=1e-4, lr_schedule="cosine",
                       warmup_fraction=0.05, ema_decay=0.99, select="final")


@dataclass
class NeoNetConfig:
    """The whole configuration: preprocessing plus one section per stage."""

    preset: str = "tiny"
    # Patients held out (stratified, :mod:`neonet_core.splits`) by every stage of one training run:
    # NeoSeg, NeoGen and the classifier validate on the same patients.
    val_fraction: float = 0.2
    seed: int = 0  # the run's seed: the hold-out and the synthetic draws (``--seed`` sets it and every stage's train.seed)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    ldm: LDMConfig = field(default_factory=LDMConfig)
    controlnet: ControlNetConfig = field(default_factory=ControlNetConfig)
    cls: ClsConfig = field(default_factory=ClsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NeoNetConfig":
        return section_from_dict(cls, data, strict=True)

    def with_overrides(self, epochs: int | None = None, seed: int | None = None, sections=TRAINED_SECTIONS) -> "NeoNetConfig":
        """A copy with the command line's ``epochs`` (the named ``sections``) and ``seed`` (every
        stage, and so every split and synthetic draw) applied; ``None`` keeps the config's value."""
        from neonet_core.errors import InputError

        if epochs is not None and epochs < 1:
            raise InputError(None, f"--epochs must be at least 1, got {epochs}")
        out = NeoNetConfig.from_dict(self.to_dict())
        if seed is not None:
            out.seed = int(seed)
        for name in TRAINED_SECTIONS:
            train = getattr(out, name).train
            if epochs is not None and name in sections:
                train.epochs = int(epochs)
            if seed is not None:
                train.seed = int(seed)
        return out


# Options of earlier releases that bundles may still hold: read and dropped (the device is a run-time
# choice; one hold-out fraction now serves every stage).
_RETIRED = {"TrainConfig": {"device"}, "AEConfig": {"val_fraction"}, "ClsConfig": {"val_fraction", "rotate_deg", "intensity_jitter"},
            "SegConfig": {"flip", "intensity_jitter"}}


def section_from_dict(cls, data: dict[str, Any], strict: bool = False):
    """Build config dataclass ``cls`` (a section or the whole config) from ``data``, recursing into
    nested sections. ``strict``: unknown keys fail (user configs); else they are ignored (a bundle's
    network config holds the section's options beside other entries)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = {k: v for k, v in data.items() if k not in _RETIRED.get(cls.__name__, ())}
    unknown = set(data) - set(fields)
    if unknown and strict:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            continue
        sub = _dataclass_type(cls, fields[name].type)
        if sub is AugmentConfig and isinstance(value, bool):  # earlier releases: augmentation on/off
            value = AugmentConfig() if value else AugmentConfig.off()
        elif sub is not None and isinstance(value, dict):
            value = section_from_dict(sub, value, strict)
        elif isinstance(value, list):  # JSON has no tuples
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _dataclass_type(owner, ftype):
    if isinstance(ftype, str):
        ftype = {"TrainConfig": TrainConfig}.get(ftype) or globals().get(ftype)
    return ftype if dataclasses.is_dataclass(ftype) else None


def load_config(name_or_path: str) -> NeoNetConfig:
    """A preset name ("tiny", "paper") or a JSON file holding a (partial) NeoNetConfig dict.

    A JSON file may name a ``"preset"`` to start from; its other keys override that preset.
    """
    from pathlib import Path

    if name_or_path in PRESETS:
        return get_preset(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"{name_or_path}: not a preset ({', '.join(PRESETS)}) nor a config file")
    import json

    from neonet_core.errors import InputError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        base = get_preset(data.get("preset", "tiny")).to_dict()
        return NeoNetConfig.from_dict(merge_dicts(base, data))
    except (json.JSONDecodeError, ValueError, TypeError) as err:
        raise InputError(path, f"invalid config: {err}") from None


def resolve_config(config) -> NeoNetConfig:
    """The one way to accept "a preset name, a config file or a NeoNetConfig"."""
    return config if isinstance(config, NeoNetConfig) else load_config(str(config))


def merge_dicts(base: dict, override: dict) -> dict:
    """``base`` with ``override`` applied key by key, recursing into nested dicts (the config merge)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge_dicts(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def _paper() -> NeoNetConfig:
    return NeoNetConfig(
        preset="paper",
        preprocess=PreprocessConfig(roi_mm=64.0, patch_size=64),  # 1 mm voxels
        seg=SegConfig(spacing_mm=1.5, channels=(16, 32, 64, 128, 256), num_res_units=2, roi_size=(96, 96, 96),
                      train=TrainConfig(epochs=300, batch_size=2, lr=1e-3)),
        ae=AEConfig(channels=(32, 64, 128), latent_channels=4, num_res_blocks=2, adversarial_weight=0.01,
                    train=TrainConfig(epochs=200, batch_size=4, lr=1e-4)),
        ldm=LDMConfig(channels=(64, 128, 256), attention_levels=(False, True, True), num_res_blocks=2, num_head_channels=32,
                      train=TrainConfig(epochs=500, batch_size=8, lr=1e-4)),
        controlnet=ControlNetConfig(conditioning_channels=(32, 64), train=TrainConfig(epochs=300, batch_size=8, lr=1e-4)),
        cls=ClsConfig(model="pattennet", neogen=True, num_dab=2, encoder_blocks=0, train=cls_schedule(epochs=100, lr=3e-4)),
    )


PRESETS = {"tiny": NeoNetConfig, "paper": _paper}


def get_preset(name: str) -> NeoNetConfig:
    """Return a fresh config for preset ``name`` ("tiny" or "paper")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
