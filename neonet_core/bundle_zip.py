"""A bundle ``.zip``: extracted once per (file, size, mtime) into a cache that keeps only the newest few.

Only ``bundle.json`` and the weight files it names are extracted (other members are ignored), and
never more than ``NEONET_BUNDLE_MAX_BYTES`` bytes (default 8 GiB) in all, checked against the sizes
the zip declares before anything is written (reading never yields more than declared). The cache
lives in ``NEONET_BUNDLE_CACHE`` (default ``<temp>/neonet-bundles-<user id>``); an extraction is
published with one rename (:func:`neonet_core.fileio.publish_folder`), so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from neonet_core.bundle_schema import MAX_JSON_BYTES
from neonet_core.errors import BundleError, InputError
from neonet_core.fileio import publish_folder

MANIFEST = "bundle.json"
KEEP = 4  # extractions kept in the cache (the most recently used)
DEFAULT_MAX_BYTES = 8 << 30
_STALE_S = 3600.0  # an unfinished extraction older than this was left by a killed process


def cache_root() -> Path:
    """Where extracted bundles live (``NEONET_BUNDLE_CACHE``, else a per-user folder in the temp dir)."""
    default = Path(tempfile.gettempdir()) / f"neonet-bundles-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return Path(os.environ.get("NEONET_BUNDLE_CACHE") or default)


def max_bytes() -> int:
    """The extraction cap: ``NEONET_BUNDLE_MAX_BYTES`` or 8 GiB."""
    value = os.environ.get("NEONET_BUNDLE_MAX_BYTES", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_BYTES


def extract_bundle_zip(zip_path: Path) -> Path:
    """The folder holding ``zip_path``'s bundle, extracted now or found in the cache."""
    stat = zip_path.stat()
    key = hashlib.sha256(f"{zip_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    root = cache_root()
    target = root / key
    if not (target / MANIFEST).is_file():
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover
        try:
            with publish_folder(target) as tmp:
                _extract(zip_path, tmp)
        except InputError as err:
            if not (target / MANIFEST).is_file():  # else: another process extracted it meanwhile
                raise BundleError(zip_path, f"cannot extract into the bundle cache {root}: {err.problem}") from None
    os.utime(target)  # most recently used
    _prune(root, keep=target)
    return target


def _extract(zip_path: Path, folder: Path) -> None:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = {m.filename: m for m in zf.infolist() if not m.is_dir()}
            manifest = members.get(MANIFEST)
            if manifest is None:
                raise BundleError(zip_path, f"not a NeoNet bundle: no {MANIFEST} at the top of the zip")
            if manifest.file_size > MAX_JSON_BYTES:
                raise BundleError(zip_path, f"{MANIFEST} is {manifest.file_size:,} bytes; at most {MAX_JSON_BYTES:,}")
            names = [MANIFEST] + _named_files(zf.read(manifest), zip_path)
            missing = [n for n in names if n not in members]
            if missing:
                raise BundleError(zip_path, f"weight file {missing[0]} named by {MANIFEST} is not in the zip")
            total, cap = sum(members[n].file_size for n in names), max_bytes()
            if total > cap:
                raise BundleError(zip_path, f"would extract {total:,} bytes, more than the {cap:,} allowed "
                                            "(set NEONET_BUNDLE_MAX_BYTES to allow more)")
            for name in names:
                with zf.open(members[name]) as source, open(folder / name, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise BundleError(zip_path, f"corrupt zip ({err})") from None


def _named_files(manifest_bytes: bytes, zip_path: Path) -> list[str]:
    """The weight files ``bundle.json`` names (full validation comes when the folder is loaded)."""
    try:
        info = json.loads(manifest_bytes.decode("utf-8"))
        files = [entry["file"] for entry in info["networks"].values()]
    except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError, AttributeError) as err:
        raise BundleError(zip_path, f"its {MANIFEST} does not list the networks' files ({type(err).__name__})") from None
    for file in files:
        if not isinstance(file, str) or Path(file).name != file or file.startswith(".") or not file.endswith(".safetensors"):
            raise BundleError(zip_path, f"its {MANIFEST} names a weight file that is not a local .safetensors: {str(file)[:60]!r}")
    return sorted(set(files))


def _prune(root: Path, keep: Path) -> None:
    """Remove all but the ``KEEP`` most recently used extractions, and stale unfinished ones."""
    now = time.time()
    done, stale = [], []
    for path in root.iterdir():
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if path.name.startswith("."):
            if age > _STALE_S:
                stale.append(path)
        elif path.is_dir() and path != keep:
            done.append((age, path))
    for _, path in sorted(done)[KEEP - 1:]:
        shutil.rmtree(path, ignore_errors=True)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
