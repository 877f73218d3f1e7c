"""Typed configuration and presets. Every hyper-parameter lives here, never in code.

A config is a tree of dataclasses; ``to_dict``/``from_dict`` round-trip it through JSON so a
bundle alone can rebuild its models. Presets: ``tiny`` (CPU, CI, 32^3 patches) and ``paper``
(GPU, 64^3 patches).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PreprocessConfig:
    """TLCR crop and intensity normalisation (see :mod:`neonet_core.tlcr`, :mod:`neonet_core.normalize`)."""

    roi_mm: float = 64.0  # edge of the physical cube centred on the tumour
    patch_size: int = 32  # isotropic voxels per edge of the resampled patch
    component: str = "largest"  # "largest" connected tumour component, or "all"
    lower_percentile: float = 0.5  # robust normalisation: this percentile -> 0
    upper_percentile: float = 99.5  # and this one -> 1 (computed inside the body, see normalize.py)


@dataclass
class NeoNetConfig:
    """The whole configuration; later stages add their own sections."""

    preset: str = "tiny"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NeoNetConfig":
        return _from_dict(cls, data)


def _from_dict(cls, data: dict[str, Any]):
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields; unknown keys fail."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        sub = _dataclass_type(cls, ftype)
        kwargs[name] = _from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(owner, ftype):
    if isinstance(ftype, str):
        ftype = globals().get(ftype)
    return ftype if dataclasses.is_dataclass(ftype) else None


PRESETS = {
    "tiny": lambda: NeoNetConfig(preset="tiny", preprocess=PreprocessConfig(patch_size=32)),
    "paper": lambda: NeoNetConfig(preset="paper", preprocess=PreprocessConfig(patch_size=64)),
}


def get_preset(name: str) -> NeoNetConfig:
    """Return a fresh config for preset ``name`` ("tiny" or "paper")."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
