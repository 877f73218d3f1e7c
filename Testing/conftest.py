"""Shared pytest fixtures. Keep this small: suites define their own helpers in their own files."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "Data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Testing/Data: small real scans with their licences (see Testing/Data/README.md)."""
    return DATA_DIR
