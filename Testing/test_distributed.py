"""Real torch.distributed: 2 CPU processes on gloo under torchrun, then a single-process resume."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from neonet_core.engine import Trainer

from test_engine import Pairs, RegressionStage, _cfg

WORKER = Path(__file__).parent / "helpers" / "train_regression.py"


def _torchrun(out, epochs, nproc=2, resume=False):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(WORKER), str(out), str(epochs)] + (["--resume"] if resume else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_gloo_ranks_stay_identical_and_resume_in_one_process(tmp_path):
    _torchrun(tmp_path / "run", epochs=2)
    rank0, rank1 = load_file(str(tmp_path / "run" / "rank0.safetensors")), load_file(str(tmp_path / "run" / "rank1.safetensors"))
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)
    initial = RegressionStage().net.state_dict()
    assert any(not torch.equal(initial[k], rank0[k]) for k in rank0), "training did not change the weights"

    # The checkpoint written by rank 0 resumes in a plain single process, to more epochs.
    stage = RegressionStage()
    result = Trainer(stage, Pairs(), None, _cfg(epochs=3), tmp_path / "run", device="cpu").fit(resume=True)
    assert result.steps == 3 * 8
    for key, value in stage.net.state_dict().items():
        assert not torch.equal(value, rank0[key])  # it trained on from the DDP weights


@pytest.mark.slow
def test_real_stages_under_torchrun_write_one_intact_bundle(tmp_path):
    """NeoSeg and the NeoGen autoencoder trained by 2 gloo ranks: rank 0 alone reports and publishes."""
    from neonet_core.bundle import load_bundle
    from neonet_core.phantom.cohort import generate_cohort

    manifest = generate_cohort(tmp_path / "cohort", cases=6, positives=2, seed=0, size=(64, 64, 20), spacing=(3.0, 3.0, 6.0))
    for stage in ("seg", "ae"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
               "neonet_core.cli.main", "--progress", "none", "train", stage, "--manifest", str(manifest),
               "--out", str(tmp_path / "bundle"), "--epochs", "1", "--device", "cpu"]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr[-2000:]
        assert len([line for line in run.stdout.splitlines() if "trained" in line]) == 1, run.stdout
    bundle = load_bundle(tmp_path / "bundle")  # verifies every hash
    assert set(bundle.networks) == {"seg", "autoencoder"}
    assert not list((tmp_path / "bundle").glob(".*")), "temporary files left behind"
