"""The shared training engine on a tiny real regression problem."""

import json

import pytest
import torch
from torch import nn

from neonet_core.engine import Stage, TrainConfig, Trainer, epoch_batches, load_weights
from neonet_core.errors import NeoNetError


class Pairs(torch.utils.data.Dataset):
    """y = x @ w_true + noise, 64 samples of 8 features."""

    def __init__(self, n=64, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, 8)[:, None] + 0.01 * torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class RegressionStage(Stage):
    name = "regression"

    def __init__(self):
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 1))

    def networks(self):
        return {"net": self.net}

    def training_step(self, nets, batch, step):
        loss = nn.functional.mse_loss(nets["net"](batch["x"]), batch["y"])
        return {"main": loss}, {}

    def validate(self, batches):
        losses = [nn.functional.mse_loss(self.net(b["x"]), b["y"]).item() for b in batches]
        return {"mse": sum(losses) / len(losses), "score": -sum(losses) / len(losses)}


def _cfg(**kw):
    return TrainConfig(**{"epochs": 6, "batch_size": 8, "lr": 1e-2, "checkpoint_every": 5, "log_every": 1, **kw})


def test_training_lowers_validation_loss(tmp_path):
    stage = RegressionStage()
    before = -stage.validate([Pairs(32, seed=1)[:32]])["score"]
    result = Trainer(stage, Pairs(), Pairs(32, seed=1), _cfg(), tmp_path / "run").fit()
    assert result.steps == 6 * 8
    assert -result.best_score < 0.5 * before
    assert (tmp_path / "run" / "best.safetensors").exists() and (tmp_path / "run" / "last.safetensors").exists()
    fresh = RegressionStage()
    load_weights(tmp_path / "run" / "best.safetensors", fresh.networks())
    fresh.net.eval()
    assert -fresh.validate([Pairs(32, seed=1)[:32]])["score"] == pytest.approx(-result.best_score, rel=1e-5)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = RegressionStage()
    Trainer(full, Pairs(), None, _cfg(), tmp_path / "full").fit()

    interrupted = RegressionStage()
    trainer = Trainer(interrupted, Pairs(), None, _cfg(epochs=2), tmp_path / "part")
    trainer.total_steps = 13  # stop mid-epoch, as a killed run would after its step-10 checkpoint
    trainer.fit()
    resumed = RegressionStage()
    result = Trainer(resumed, Pairs(), None, _cfg(), tmp_path / "part").fit(resume=True)
    assert result.steps == 48
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "history.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


def test_refuses_to_mix_runs_and_to_resume_nothing(tmp_path):
    Trainer(RegressionStage(), Pairs(), None, _cfg(epochs=1), tmp_path / "run").fit()
    with pytest.raises(NeoNetError, match="earlier regression run"):
        Trainer(RegressionStage(), Pairs(), None, _cfg(epochs=1), tmp_path / "run").fit()
    with pytest.raises(NeoNetError, match="nothing to resume"):
        Trainer(RegressionStage(), Pairs(), None, _cfg(), tmp_path / "empty").fit(resume=True)


def test_epoch_batches_cover_each_item_once_and_split_across_ranks():
    batches = epoch_batches(20, 4, seed=3, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(20))
    assert epoch_batches(20, 4, 3, 1) == batches and epoch_batches(20, 4, 3, 2) != batches
    rank0, rank1 = epoch_batches(20, 4, 3, 1, 0, 2), epoch_batches(20, 4, 3, 1, 1, 2)
    assert [sorted(a + b) for a, b in zip(rank0, rank1)] == [sorted(b) for b in batches]
