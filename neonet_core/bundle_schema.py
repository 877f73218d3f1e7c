"""What a ``bundle.json`` must hold, checked before anything in it is used; each problem names its field.

- parsing: at most 16 MiB, UTF-8 JSON, nesting at most 64 levels deep;
- types and ranges: ``threshold`` a finite number in [0, 1], ``class_names`` two strings, ``networks``
  an object of ``{file: local .safetensors name, sha256: 64 hex digits, config: object}``, every number
  of every config finite;
- ``info_sha256``: the SHA-256 of the rest of the file (canonical JSON), written by
  :func:`neonet_core.bundle.write_bundle_info`; a bundle.json edited by hand no longer matches it;
- weights against config: :func:`check_weight_shapes` compares the parameter shapes a config builds
  (on PyTorch's meta device, so an absurd config allocates nothing) with the safetensors header.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from neonet_core.errors import BundleError

MAX_JSON_BYTES = 16 << 20
MAX_DEPTH = 64
MAX_PARAMETERS = 2_000_000_000  # per network; the paper preset's largest has a few tens of millions
HASH_FIELD = "info_sha256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TEXT_FIELDS = ("library_version", "name", "version", "threshold_source", "model_card")
_OBJECT_FIELDS = ("config", "cohort", "metrics", "training")


def parse_bundle_json(path: Path) -> Any:
    """The parsed ``bundle.json`` (any JSON value); BundleError when too large, not UTF-8 JSON, or too deep."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise BundleError(path, f"is {size:,} bytes; a bundle.json is at most {MAX_JSON_BYTES:,}")
        text = path.read_text(encoding="utf-8")
        info = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(path, f"is not valid JSON ({err})") from None
    except RecursionError:
        raise BundleError(path, f"is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if _depth(info) > MAX_DEPTH:
        raise BundleError(path, f"is nested too deeply (at most {MAX_DEPTH} levels)")
    return info


def validate_info(info: Any, path: Path, format_name: str, format_version: int | None) -> dict:
    """``info`` when it is a valid bundle.json of this format (and ``format_version``, unless None),
    else BundleError naming the first bad field."""
    if not isinstance(info, dict) or info.get("format") != format_name:
        raise BundleError(path, f"is not a {format_name} manifest")
    if format_version is not None and info.get("format_version") != format_version:
        raise BundleError(path, f"unknown format version {info.get('format_version')!r} (this NeoNet reads {format_version})")
    if HASH_FIELD in info:
        if info[HASH_FIELD] != info_hash(info):
            raise BundleError(path, f"was changed after it was written (its {HASH_FIELD} does not match its content); "
                                    "re-export the bundle, or write it with neonet_core.bundle.write_bundle_info")
    for key in _TEXT_FIELDS:
        _expect(key in info and not isinstance(info[key], str), path, key, "must be a string", info.get(key))
    for key in _OBJECT_FIELDS:
        _expect(key in info and not isinstance(info[key], dict), path, key, "must be a JSON object", info.get(key))
    if "threshold" in info:
        t = info["threshold"]
        ok = isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0.0 <= t <= 1.0
        _expect(not ok, path, "threshold", "must be a finite number from 0 to 1", t)
    if "class_names" in info:
        names = info["class_names"]
        ok = isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) and 0 < len(n) <= 64 for n in names)
        _expect(not ok, path, "class_names", "must be a list of two short strings", names)
    _check_finite(info.get("config", {}), path, "config")
    networks = info.get("networks", {})
    _expect(not isinstance(networks, dict), path, "networks", "must be a JSON object {name: {file, sha256, config}}", networks)
    for name, entry in networks.items():
        _check_network(name, entry, path)
    return info


def info_hash(info: dict) -> str:
    """SHA-256 of ``info`` without its ``info_sha256`` field, as canonical JSON."""
    rest = {k: v for k, v in info.items() if k != HASH_FIELD}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` from a safetensors file's header, without reading the tensors."""
    try:
        with open(file, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            size = file.stat().st_size
            if length > min(size - 8, 100 << 20):
                raise ValueError(f"header length {length} does not fit the file")
            header = json.loads(f.read(length))
        return {k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (OSError, struct.error, ValueError, TypeError, KeyError, AttributeError) as err:
        raise BundleError(file, f"not a readable safetensors weight file ({type(err).__name__}: {err})") from None


def check_weight_shapes(module_shapes: dict[str, tuple[int, ...]], file: Path, network: str, manifest: Path) -> None:
    """BundleError unless the config's parameter shapes (``module_shapes``) are those stored in ``file``."""
    count = sum(math.prod(shape) for shape in module_shapes.values())
    if count > MAX_PARAMETERS:
        raise BundleError(manifest, f"the config of network {network!r} asks for {count:,} parameters "
                                    f"(at most {MAX_PARAMETERS:,}); the config is damaged or hostile")
    stored = safetensors_shapes(file)
    for key in sorted(set(module_shapes) | set(stored)):
        if module_shapes.get(key) != stored.get(key):
            want = "missing" if key not in module_shapes else f"shape {list(module_shapes[key])}"
            have = "missing" if key not in stored else f"shape {list(stored[key])}"
            raise BundleError(manifest, f"the config of network {network!r} does not fit its weights {file.name}: "
                                        f"parameter {key!r} is {want} in the config, {have} in the file")


# --- helpers --------------------------------------------------------------------------------------
def _check_network(name: Any, entry: Any, path: Path) -> None:
    field = f"networks.{name}"
    _expect(not isinstance(name, str) or not _NETWORK_NAME.match(name), path, field, "is not a network name (A-Za-z0-9_.-)", name)
    _expect(not isinstance(entry, dict), path, field, "must be a JSON object {file, sha256, config}", entry)
    for key in ("file", "sha256", "config"):
        _expect(key not in entry, path, field, f"misses {key!r}", None)
    file = entry["file"]
    ok = isinstance(file, str) and Path(file).name == file and file.endswith(".safetensors") and not file.startswith(".")
    _expect(not ok, path, f"{field}.file", "must name a local .safetensors file", file)
    _expect(not isinstance(entry["sha256"], str) or not _HEX64.match(entry["sha256"]), path, f"{field}.sha256",
            "must be 64 lowercase hex digits", entry["sha256"])
    _expect(not isinstance(entry["config"], dict), path, f"{field}.config", "must be a JSON object", entry["config"])
    _check_finite(entry["config"], path, f"{field}.config")


def _check_finite(value: Any, path: Path, field: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise BundleError(path, f"field {field!r}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, path, f"{field}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_finite(item, path, f"{field}[{n}]")


def _expect(bad: bool, path: Path, field: str, problem: str, value: Any) -> None:
    if bad:
        shown = "" if value is None else f", got {json.dumps(value, default=str)[:60]}"
        raise BundleError(path, f"field {field!r}: {problem}{shown}")


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative, so any depth is measured safely)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
