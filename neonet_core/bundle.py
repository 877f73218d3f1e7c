"""Model bundles: one folder (or a .zip of it) that alone rebuilds and runs every trained network.

Layout::

    bundle.json          format + library version, the NeoNetConfig, per-network config and SHA-256,
                         preprocessing, class names, decision threshold, cohort summary, metrics
    <network>.safetensors  one weight file per network (e.g. seg, ae, ldm, controlnet, cls)

Loading validates ``bundle.json`` (:mod:`neonet_core.bundle_schema`: types, ranges, finite numbers,
its own content hash) and checks that every weight file is there; a network's SHA-256 is verified
when its weights are first read (:meth:`Bundle.verify` checks them all), after its config's
parameter shapes were checked against the file on the meta device. Never unpickles: weights are
safetensors only. A ``.zip`` is extracted once into a cache (:mod:`neonet_core.bundle_zip`).
Writing is atomic per file, and ``bundle.json`` is written last, so a bundle interrupted
mid-write never claims a weight file it does not hold.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neonet_core import __version__
from neonet_core.distributed import barrier, is_main_process
from neonet_core.bundle_schema import HASH_FIELD, check_weight_shapes, info_hash, parse_bundle_json, validate_info
from neonet_core.errors import BundleError
from neonet_core.fileio import atomic_path, write_text_atomic
from neonet_core.io_checks import input_problem

FORMAT = "neonet-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A bundle on disk. ``info`` is the parsed ``bundle.json``; weight hashes are checked on first read."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    _verified: set[str] = field(default_factory=set, repr=False)

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        return self.info.get("networks", {})

    def has(self, network: str) -> bool:
        return network in self.networks

    def network_config(self, network: str) -> dict[str, Any]:
        return self._entry(network)["config"]

    def verify(self, networks: list[str] | None = None) -> "Bundle":
        """Check the SHA-256 of ``networks``' weight files (default: all), each once. Raises BundleError."""
        for name in self.networks if networks is None else networks:
            if name not in self._verified:
                file = self.path / self._entry(name)["file"]
                if sha256_file(file) != self._entry(name)["sha256"]:
                    raise BundleError(file, f"SHA-256 mismatch for network {name!r}: the file was changed or is corrupt")
                self._verified.add(name)
        return self

    def state_dict(self, network: str) -> dict[str, torch.Tensor]:
        """Weights of ``network``, its hash verified first; read with safetensors only."""
        from safetensors.torch import load_file

        file = self.path / self.verify([network])._entry(network)["file"]
        try:
            return load_file(str(file))
        except Exception as err:  # safetensors raises its own error types for foreign files
            raise BundleError(file, f"not a readable safetensors weight file ({type(err).__name__}: {err})") from None

    def load_into(self, network: str, module: nn.Module) -> nn.Module:
        """Load ``network``'s weights into ``module`` (strict) and return it in eval mode."""
        try:
            module.load_state_dict(self.state_dict(network))
        except RuntimeError as err:
            raise BundleError(self.path, f"weights of network {network!r} do not fit its config: {str(err).splitlines()[0]}") from None
        return module.eval()

    def build(self, network: str, builder) -> nn.Module:
        """``builder(network_config)`` with the stored weights loaded (eval mode).

        A config the builder refuses (unknown architecture, unknown option, missing section) is a
        :class:`BundleError` naming the bundle.json, not a bare ValueError/KeyError. The network is
        first built on the meta device (no memory) and its parameter shapes are checked against the
        weight file's header, so an absurd config never allocates.
        """
        config = self.network_config(network)
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in self._run_builder(network, builder, config).state_dict().items()}
        check_weight_shapes(shapes, self.path / self._entry(network)["file"], network, self.path / MANIFEST)
        return self.load_into(network, self._run_builder(network, builder, config))

    def _run_builder(self, network: str, builder, config) -> nn.Module:
        try:
            return builder(config)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
            problem = f"missing {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
            raise BundleError(self.path / MANIFEST, f"the config of network {network!r} cannot build it ({problem[:200]})") from None

    def _entry(self, network: str) -> dict[str, Any]:
        if network not in self.networks:
            have = ", ".join(sorted(self.networks)) or "none"
            raise BundleError(self.path / MANIFEST, f"has no network {network!r} (it has: {have})")
        return self.networks[network]


def load_bundle(path: str | Path) -> Bundle:
    """Open a bundle folder or .zip: validate ``bundle.json`` and check that every weight file exists.

    Hashes are checked when a network's weights are read (:meth:`Bundle.verify` checks all). Raises BundleError.
    """
    from neonet_core.bundle_zip import extract_bundle_zip

    path = Path(path)
    problem = input_problem(path, "bundle", folder_ok=True)
    if problem:
        raise BundleError(path, "no such bundle (folder or .zip)" if problem == "bundle not found" else problem)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise BundleError(path, "not a bundle folder or a .zip of one")
        path = extract_bundle_zip(path)
    manifest = path / MANIFEST
    problem = input_problem(manifest, MANIFEST)
    if problem:
        raise BundleError(path, f"not a NeoNet bundle: no {MANIFEST}" if problem.endswith("not found") else f"{MANIFEST} {problem}")
    info = validate_info(parse_bundle_json(manifest), manifest, FORMAT, FORMAT_VERSION)
    for name, entry in info.get("networks", {}).items():
        problem = input_problem(path / entry["file"], "weight")
        if problem:
            raise BundleError(path / entry["file"], f"weight file of network {name!r} is missing" if problem.endswith("not found") else problem)
    return Bundle(path, info)


def new_bundle_info(config: dict[str, Any], **extra) -> dict[str, Any]:
    """A fresh ``bundle.json`` dictionary for ``config`` (a NeoNetConfig.to_dict())."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "config": config,
        "networks": {},
        **extra,
    }


def add_network(bundle_dir: str | Path, info: dict[str, Any], name: str, state: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Write ``<name>.safetensors`` atomically and record it (with its hash and config) in ``info``.

    Call :func:`write_bundle_info` afterwards to publish the change. Under ``torchrun`` only rank 0
    writes; the other ranks record nothing (they publish nothing either).
    """
    from safetensors.torch import save_file

    if not is_main_process():
        return
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    file = bundle_dir / f"{name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(file) as tmp:
        save_file(tensors, str(tmp))
    info["networks"][name] = {"file": file.name, "sha256": sha256_file(file), "config": config}


def write_bundle_info(bundle_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write ``bundle.json`` atomically (last, after the weight files).

    Under ``torchrun`` rank 0 writes and every rank waits until it has, so all ranks read the same
    bundle afterwards.
    """
    path = Path(bundle_dir) / MANIFEST
    if is_main_process():
        clean = json.loads(json.dumps({k: v for k, v in info.items() if k != HASH_FIELD}, default=float))
        validate_info(clean, path, FORMAT, None)  # never write fields that would not load
        clean = _null_non_finite(clean)  # NaN metrics are not JSON
        info[HASH_FIELD] = clean[HASH_FIELD] = info_hash(clean)
        write_text_atomic(path, json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n")
    barrier()
    return path


def _null_non_finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _null_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_null_non_finite(v) for v in value]
    return value


def read_or_new_bundle_info(bundle_dir: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """The current ``bundle.json`` of ``bundle_dir`` (verified) when there is one, else a new one."""
    if (Path(bundle_dir) / MANIFEST).exists():
        return load_bundle(bundle_dir).verify().info
    return new_bundle_info(config)


def model_card(info: dict, name: str) -> str:
    """The model card of a bundle: a short plain-text summary of its ``bundle.json`` ``info``.

    ``name`` is shown when ``info`` has none. Printed by ``neonet bundle info``, shown by the Slicer panel.
    """
    config = info.get("config", {})
    pre = config.get("preprocess", {})
    lines = [
        f"NeoNet bundle {info.get('name', name)} (library {info.get('library_version')}, preset {config.get('preset')})",
        f"networks: {', '.join(sorted(info.get('networks', {}))) or 'none'}",
        f"preprocessing: {pre.get('roi_mm')} mm TLCR cube -> {pre.get('patch_size')}^3 patch",
    ]
    if "threshold" in info:
        lines.append(f"decision threshold: {info['threshold']:.3f} ({info.get('threshold_source', 'source not recorded')})")
    if "cohort" in info:
        c = info["cohort"]
        lines.append(f"training cohort: {c.get('cases')} cases ({c.get('positive')} PNI+, {c.get('negative')} PNI-)")
    if info.get("model_card"):
        lines.append(str(info["model_card"]))
    return "\n".join(lines)


def zip_bundle(bundle_dir: str | Path, zip_path: str | Path) -> Path:
    """Pack a bundle folder into a .zip (atomically), every hash verified first."""
    bundle = load_bundle(bundle_dir).verify()
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            zf.write(bundle.path / MANIFEST, MANIFEST)
            for entry in bundle.networks.values():
                zf.write(bundle.path / entry["file"], entry["file"])
    return Path(zip_path)
