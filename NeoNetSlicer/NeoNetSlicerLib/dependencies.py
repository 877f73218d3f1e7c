"""Python dependencies of NeoNetSlicer inside Slicer: what is missing, and installing it. No Qt.

One question for everything missing (``confirm(message) -> bool``, a dialog from the Widget), then:
torch through the PyTorch extension's ``PyTorchUtils`` when it is installed (it picks the CUDA build
that fits the driver; the extension lists PyTorch in EXTENSION_DEPENDS), else pip; then
``requirements.txt`` with pip. pip is Slicer's ``slicer.packaging.pip_install`` (Slicer >= 5.12, with a
progress dialog; imported explicitly, since ``import slicer`` does not import it) or
``slicer.util.pip_install``, always given a list of arguments so that no path is re-split.
Offline: set ``NEONET_WHEELHOUSE`` (or pass ``wheelhouse``) to a folder of wheels; pip then installs
from it only (``--no-index --find-links``). Refused on a Python older than NeoNet supports.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from NeoNetSlicerLib.panel import python_problem

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


def ensure(confirm, wheel_folder: str | Path | None = None, busy=contextlib.nullcontext, requirements: list[str] | None = None) -> bool:
    """Inside Slicer: install what is missing of ``requirements`` (default: torch, then requirements.txt)
    after one question.

    ``confirm(message) -> bool`` asks the user; ``busy()`` is a context manager shown while pip runs
    (e.g. ``slicer.util.WaitCursor``). Returns False if the user declined; RuntimeError on a Python
    NeoNet does not support.
    """
    from packaging.requirements import Requirement

    problem = python_problem()
    if problem:
        raise RuntimeError(problem)
    folder = wheelhouse(wheel_folder)
    todo = missing(requirements or [TORCH_REQUIREMENT, *read_requirements()])
    if not todo:
        return True
    if not confirm(install_message(todo, folder)):
        return False
    torch = [r for r in todo if Requirement(r).name == "torch"]
    rest = [r for r in todo if r not in torch]
    with busy():
        if torch:
            _install_torch(torch[0], folder)
        if rest:
            pip_install(pip_arguments(rest, folder))
    return True


def _install_torch(requirement: str, folder: Path | None) -> None:
    from packaging.requirements import Requirement

    if folder is None:
        try:
            import PyTorchUtils  # the PyTorch extension
        except ImportError:
            PyTorchUtils = None
        if PyTorchUtils is not None:
            version = str(Requirement(requirement).specifier)
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=version) is None:
                raise RuntimeError("the PyTorch extension could not install torch (see the Python console)")
            return
    pip_install(pip_arguments([requirement], folder))


def pip_install(arguments: list[str]) -> None:
    """``pip install`` ``arguments`` through Slicer, as a list (each item one argument, never re-split)."""
    try:
        import slicer.packaging as packaging  # Slicer >= 5.12; a submodule `import slicer` does not load
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_install"):
        packaging.pip_install(list(arguments))
    else:
        import slicer

        slicer.util.pip_install(list(arguments))
