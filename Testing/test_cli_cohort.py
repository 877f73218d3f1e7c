"""`neonet cohort check` in a subprocess: exit codes, the problem table and the summary line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from neonet_core.io import write_volume
from neonet_core.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
# Run the real entry point (neonet_core.cli.main.main) with only the cohort subcommand registered,
# so this suite does not depend on the other subcommands' modules.
ENTRY = "import sys, neonet_core.cli.main as m; m.COMMAND_MODULES = ['cohort']; sys.exit(m.main(sys.argv[1:]))"
HEADER = "case_id,image,tumor_mask,anatomy_mask,label,patient_id\n"


def neonet(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "--progress", "none", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def make_cohort(folder: Path, labels=(1, 0, 0), empty_mask_for=None) -> Path:
    rows = []
    for n, label in enumerate(labels):
        case_id = f"case {n}"
        image = np.random.default_rng(n).normal(100, 10, (6, 8, 10)).astype(np.float32)
        mask = np.zeros((6, 8, 10), np.uint8)
        if case_id != empty_mask_for:
            mask[2:4, 3:5, 4:7] = 1
        write_volume(Volume(image, (1.0, 1.0, 2.0)), folder / f"img {n}.nii.gz")
        write_volume(Volume(mask, (1.0, 1.0, 2.0)), folder / f"mask {n}.nrrd")
        rows.append(f"{case_id},img {n}.nii.gz,mask {n}.nrrd,,{label},\n")
    path = folder / "cohort.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def test_clean_cohort_exits_0(tmp_path):
    result = neonet("cohort", "check", make_cohort(tmp_path), "--labels-required")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3 cases OK: 1 positive, 2 negative"


def test_problems_are_tabled_and_exit_1(tmp_path):
    manifest = make_cohort(tmp_path, labels=(1, 0, ""), empty_mask_for="case 1")
    with manifest.open("a", encoding="utf-8") as f:
        f.write("case 3,missing.nii.gz,,,7,\n")
    result = neonet("cohort", "check", manifest, "--labels-required")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["case", "file", "problem"]
    body = "\n".join(lines[1:-1])
    assert len(lines) == 1 + 4 + 1  # header, 4 problems, summary
    assert "case 1  mask 1.nrrd" in body and "tumour mask is empty" in body
    assert "empty label (0 or 1 is required for training)" in body
    assert "missing.nii.gz" in body and "image not found" in body
    assert "label '7' is not 0 (PNI-) or 1 (PNI+)" in body
    assert lines[-1] == f"{manifest}: 4 problem(s) in 3 case(s)"


def test_labels_optional_without_flag(tmp_path):
    result = neonet("cohort", "check", make_cohort(tmp_path, labels=(1, "", "")))
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "3 cases OK: 1 positive, 0 negative, 2 unlabelled"


def test_missing_manifest_is_one_line_error(tmp_path):
    result = neonet("cohort", "check", tmp_path / "nope.csv")
    assert result.returncode == 1
    assert result.stderr.strip() == f"neonet cohort: error: {tmp_path / 'nope.csv'}: manifest not found"


def test_help():
    result = neonet("cohort", "--help")
    assert result.returncode == 0 and "check" in result.stdout
    result = neonet("cohort", "check", "--help")
    assert result.returncode == 0 and "--labels-required" in result.stdout
    assert neonet("cohort").returncode == 2
