"""The headless batch script's exits (NeoNetSlicer/Scripts/batch_predict.py): whatever goes wrong, it ends
with an exit code and one line on stderr, so a ``Slicer --no-main-window --python-script`` run never
stays open; without NeoNet's packages it stops before any work with exit code 2.
(A batch that predicts runs in test_slicer_logic.py.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "NeoNetSlicer" / "Scripts" / "batch_predict.py"


@pytest.fixture(scope="module")
def batch():
    spec = importlib.util.spec_from_file_location("batch_predict", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_error_outside_the_per_case_guard_still_ends_the_run(batch, tmp_path, capsys):
    if batch.missing_packages():
        pytest.skip("NeoNet's packages are not installed here (the next test covers that)")
    pytest.importorskip("slicer", reason="the batch runs on an MRML scene (slicer-core wheel)")
    manifest = tmp_path / "cohort.csv"
    (tmp_path / "broken.nrrd").write_text("NRRD0004\nnot a volume\n")
    manifest.write_text("case_id,image,tumor_mask\nbroken,broken.nrrd,\n")
    (tmp_path / "a file").write_text("")
    out = tmp_path / "a file" / "results.csv"  # writing the results fails after the case failed
    assert batch.run(["--manifest", str(manifest), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("[1/1] broken: FAILED") and err[-1].startswith("batch_predict: error: ")
    assert "a file" in err[-1] and "Traceback" not in "\n".join(err)


def test_bad_arguments_exit_2(batch, tmp_path, capsys):
    assert batch.run(["--out", str(tmp_path / "r.csv")]) == 2  # argparse: --manifest or --input-dir is required
    (tmp_path / "r.csv").write_text("earlier results")
    assert batch.run(["--input-dir", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err.strip().endswith("already exists; NeoNet never overwrites a file")
    assert (tmp_path / "r.csv").read_text() == "earlier results"


def test_missing_packages_exit_2_before_any_work(batch, tmp_path, capsys):
    absent = batch.missing_packages()
    if not absent:
        pytest.skip("NeoNet's packages are installed here (CI's Slicer-Python stage runs this without torch)")
    assert batch.run(["--input-dir", str(tmp_path), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "not installed in this Python" in err and absent[0] in err and not (tmp_path / "r.csv").exists()
    assert sys.version_info >= (3, 10) or "5.10" in err
