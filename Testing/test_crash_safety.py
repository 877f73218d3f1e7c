"""SIGKILL a training run at a random step, resume it, and get the weights of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).parent / "helpers" / "train_regression.py"
EPOCHS = 30  # 240 steps, a checkpoint every 5


def _start(out, resume=False):
    cmd = [sys.executable, str(WORKER), str(out), str(EPOCHS), "--json"] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _kill_at_step(proc, step):
    """Read progress lines until ``step`` is reached, then SIGKILL the process."""
    for line in proc.stdout:
        event = json.loads(line)
        if event.get("event") == "progress" and event["step"] >= step:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    rng = random.Random()
    first, second = sorted(rng.sample(range(6, 230), 2))

    reference = _start(tmp_path / "reference")
    reference.communicate(timeout=120)
    assert reference.returncode == 0

    run = tmp_path / "killed"
    _kill_at_step(_start(run), first)
    torch.load(run / "checkpoint.pt", weights_only=True)  # never half-written
    _kill_at_step(_start(run, resume=True), second)
    final = _start(run, resume=True)
    final.communicate(timeout=120)
    assert final.returncode == 0

    expected, actual = load_file(str(tmp_path / "reference" / "rank0.safetensors")), load_file(str(run / "rank0.safetensors"))
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=f"killed at steps {first}, {second}")
    assert not list(run.glob(".*")), "temporary files left behind"
