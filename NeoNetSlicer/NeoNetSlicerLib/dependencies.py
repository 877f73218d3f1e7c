"""Python dependencies of NeoNetSlicer inside Slicer: what is missing, and installing it. No Qt.

Order: torch first (``slicer.packaging.pip_ensure`` on Slicer >= 5.11, else the PyTorch extension's
``PyTorchUtils``, else plain pip), then ``requirements.txt``. Every install asks first through the
``confirm(message) -> bool`` callback the Widget passes (a dialog) or, on new Slicer, pip_ensure's
own dialog. Offline: set the environment variable ``NEONET_WHEELHOUSE`` (or pass ``wheelhouse``)
to a folder of wheels; pip then installs from it only (``--no-index --find-links``).
"""

from __future__ import annotations

import os
from pathlib import Path

TORCH_REQUIREMENT = "torch>=2.2"
WHEELHOUSE_ENV = "NEONET_WHEELHOUSE"


def requirements_path() -> Path:
    """``requirements.txt`` beside the module (installed) or in the source tree."""
    return Path(__file__).resolve().parent.parent / "requirements.txt"


def read_requirements(path: str | Path | None = None) -> list[str]:
    """The requirement lines of a requirements file (comments and blank lines dropped)."""
    path = Path(path) if path is not None else requirements_path()
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def missing(requirements: list[str]) -> list[str]:
    """The requirements not satisfied by the installed distributions (absent, or a version outside the spec)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    out = []
    for text in requirements:
        requirement = Requirement(text)
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            out.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            out.append(text)
    return out


def wheelhouse(folder: str | Path | None = None) -> Path | None:
    """The offline wheel folder: ``folder``, else ``$NEONET_WHEELHOUSE``, else None (install from the index)."""
    folder = folder or os.environ.get(WHEELHOUSE_ENV)
    if not folder:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: wheelhouse folder not found (set {WHEELHOUSE_ENV} to a folder of .whl files)")
    return folder


def pip_arguments(requirements: list[str], wheel_folder: Path | None = None) -> list[str]:
    """pip install arguments (without ``pip install``) for ``requirements``, offline when a wheel folder is given."""
    offline = ["--no-index", "--find-links", str(wheel_folder)] if wheel_folder is not None else []
    return [*offline, *requirements]


def install_message(requirements: list[str], wheel_folder: Path | None = None) -> str:
    where = f"from the wheel folder {wheel_folder}" if wheel_folder else "from the Python package index (internet)"
    return (
        "NeoNet needs these Python packages in Slicer's Python:\n\n  " + "\n  ".join(requirements)
        + f"\n\nInstall them now {where}? This can take several minutes (torch is large)."
    )


def ensure(confirm, wheel_folder: str | Path | None = None) -> bool:
    """Inside Slicer: install torch then requirements.txt when missing. Returns False if the user declined.

    ``confirm(message) -> bool`` asks the user (e.g. ``slicer.util.confirmOkCancelDisplay``).
    """
    import slicer

    folder = wheelhouse(wheel_folder)
    if missing([TORCH_REQUIREMENT]):
        if not _install_torch(confirm, folder):
            return False
    rest = missing(read_requirements())
    if rest:
        if not confirm(install_message(rest, folder)):
            return False
        _pip_install(slicer, pip_arguments(rest, folder))
    return True


def _install_torch(confirm, folder: Path | None) -> bool:
    import slicer

    packaging = getattr(slicer, "packaging", None)
    if folder is None and packaging is not None and hasattr(packaging, "pip_ensure"):  # Slicer >= 5.11
        try:
            packaging.pip_ensure(TORCH_REQUIREMENT, requester="NeoNet")  # asks the user itself
        except RuntimeError:  # the user declined
            return False
        return True
    if folder is None:
        try:
            import PyTorchUtils  # the PyTorch extension (older Slicer): picks the CUDA build that fits the driver

            return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=">=2.2") is not None
        except ImportError:
            pass
    if not confirm(install_message([TORCH_REQUIREMENT], folder)):
        return False
    _pip_install(slicer, pip_arguments([TORCH_REQUIREMENT], folder))
    return True


def _pip_install(slicer, arguments: list[str]) -> None:
    packaging = getattr(slicer, "packaging", None)
    install = packaging.pip_install if packaging is not None and hasattr(packaging, "pip_install") else slicer.util.pip_install
    install(" ".join(f'"{a}"' if " " in a else a for a in arguments))
