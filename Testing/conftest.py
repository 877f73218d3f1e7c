"""Pytest fixtures shared by more than one suite. Keep this small: suites define their own helpers in their own files."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "Data"


@pytest.fixture(scope="module")
def quiet_single_thread():
    """No progress output and one torch thread for a module (the test machine's 2 cores are shared:
    more threads thrash). A module opts in with an autouse fixture returning this one."""
    import torch

    from neonet_core.progress import set_default_mode

    threads = torch.get_num_threads()
    set_default_mode("none")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    set_default_mode("bar")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Testing/Data: small real scans with their licences (see Testing/Data/README.md)."""
    return DATA_DIR


@pytest.fixture
def fail_case(monkeypatch):
    """``fail_case(module, name, index)``: make the per-case generator ``module.name(index, ...)`` raise
    ``RuntimeError("disk full")`` for case ``index`` (the others run as before); returns the real function."""

    def install(module, name: str, index: int):
        real = getattr(module, name)

        def failing(i, *args, **kwargs):
            if i == index:
                raise RuntimeError("disk full")
            return real(i, *args, **kwargs)

        monkeypatch.setattr(module, name, failing)
        return real

    return install


def write_dicom_slice(image, tags: dict, path) -> None:
    """Write one SimpleITK slice as a DICOM file with ``tags`` (keeping its UIDs): test series made to order."""
    import SimpleITK as sitk

    for key, value in tags.items():
        image.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)
