"""The shared training engine on a tiny real regression problem."""

import json

import pytest
import torch
from torch import nn

from neonet_core.engine import Stage, TrainConfig, Trainer, epoch_batches, load_weights
from neonet_core.engine.ema import ema_decay_at
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


# --- learning-rate schedule, weight EMA, published weights, torn history -------------------------

from safetensors.torch import load_file  # noqa: E402

from neonet_core.engine import lr_factor, read_history  # noqa: E402


def test_cosine_schedule_values_at_known_steps():
    cfg = TrainConfig(lr_schedule="cosine", warmup_steps=10)
    assert lr_factor(cfg, 0, 100) == pytest.approx(0.1)  # warm-up starts at 1/W, not at 0
    assert lr_factor(cfg, 4, 100) == pytest.approx(0.5)
    assert lr_factor(cfg, 9, 100) == 1.0 and lr_factor(cfg, 10, 100) == 1.0  # peak
    assert lr_factor(cfg, 55, 100) == pytest.approx(0.5)  # half-way through the decay
    assert 0 < lr_factor(cfg, 99, 100) < 1e-3  # ~0 at the last step
    factors = [lr_factor(cfg, s, 100) for s in range(10, 100)]
    assert all(a > b for a, b in zip(factors, factors[1:]))
    by_fraction = TrainConfig(lr_schedule="cosine", warmup_fraction=0.1)
    assert [lr_factor(by_fraction, s, 100) for s in range(100)] == [lr_factor(cfg, s, 100) for s in range(100)]
    assert [lr_factor(TrainConfig(), s, 100) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]  # today's behaviour
    assert lr_factor(TrainConfig(warmup_steps=4), 1, 100) == 0.5 and lr_factor(TrainConfig(warmup_steps=4), 50, 100) == 1.0
    for bad in ({"lr_schedule": "linear"}, {"select": "worst"}, {"ema_decay": 1.0}, {"warmup_steps": 2, "warmup_fraction": 0.1}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_the_optimiser_gets_the_scheduled_learning_rate(tmp_path):
    cfg = _cfg(epochs=2, lr_schedule="cosine", warmup_steps=4)
    trainer = Trainer(RegressionStage(), Pairs(), None, cfg, tmp_path / "run")
    seen = []
    step = trainer._train_step
    trainer._train_step = lambda batch: (step(batch), seen.append(trainer.opts["main"].param_groups[0]["lr"]))[0]
    trainer.fit()
    expected = [1e-2 * lr_factor(cfg, s, 16) for s in range(16)]
    assert seen == expected
    assert [r["lr"] for r in read_history(tmp_path / "run" / "history.jsonl")] == expected


class BNStage(RegressionStage):
    """A regression net with BatchNorm (buffers for the EMA) and dropout (random numbers per step);
    records its live weights at the start of every step (= the weights after the previous step)."""

    kill_at = None

    def __init__(self):
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.1), nn.Linear(16, 1))
        self.seen = []

    def training_step(self, nets, batch, step):
        if step == self.kill_at:
            raise KeyboardInterrupt("killed")
        self.seen.append({k: v.detach().clone().double() for k, v in self.net.state_dict().items()})
        return super().training_step(nets, batch, step)


def _published(path):
    return {k[len("net."):]: v for k, v in load_file(str(path)).items()}


def test_ema_warm_up():
    assert [round(ema_decay_at(0.99, n), 4) for n in (1, 10, 100, 1000)] == [0.1818, 0.55, 0.9182, 0.99]
    assert ema_decay_at(0.8, 50) == 0.8


def test_ema_is_the_closed_form_average_buffers_included_and_is_what_validates_and_publishes(tmp_path):
    decay = 0.8
    stage = BNStage()
    result = Trainer(stage, Pairs(), Pairs(32, seed=1), _cfg(epochs=2, ema_decay=decay, select="final"), tmp_path / "run").fit()
    states = stage.seen[1:] + [{k: v.detach().clone().double() for k, v in stage.net.state_dict().items()}]
    n = len(states)  # the weights after steps 1..16; AveragedModel starts from the first of them
    assert n == 16 and result.selected_step == 16
    published = _published(result.weights)
    for key, value in published.items():
        if key.endswith("num_batches_tracked"):
            assert int(value) == int(states[-1][key])  # integer buffers follow the live network
            continue
        expected = states[0][key]  # the recursion with the warmed-up decay min(0.8, (1 + m) / (10 + m)), m updates before
        for j in range(1, n):
            d = ema_decay_at(decay, j)
            expected = d * expected + (1 - d) * states[j][key]
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
    assert any(key.endswith("running_mean") for key in published)
    # the live (raw) weights are not the published ones, and validation ran on the EMA weights
    assert not torch.equal(published["0.weight"], stage.net.state_dict()["0.weight"])
    fresh = BNStage()
    load_weights(result.weights, fresh.networks())
    fresh.net.eval()
    assert fresh.validate([Pairs(32, seed=1)[:32]])["score"] == pytest.approx(result.last_metrics["score"], rel=1e-5)


def test_select_final_publishes_the_last_weights_and_still_validates(tmp_path):
    best = Trainer(RegressionStage(), Pairs(), Pairs(32, seed=1), _cfg(), tmp_path / "best").fit()
    assert best.selected_step == best.best_step and best.weights == tmp_path / "best" / "best.safetensors"
    final = Trainer(RegressionStage(), Pairs(), Pairs(32, seed=1), _cfg(select="final"), tmp_path / "final").fit()
    assert final.selected_step == final.steps == 48 and final.best_score == best.best_score
    published, last = load_file(str(final.weights)), load_file(str(tmp_path / "final" / "last.safetensors"))
    assert published.keys() == last.keys() and all(torch.equal(published[k], last[k]) for k in last)
    validations = [r for r in read_history(tmp_path / "final" / "history.jsonl") if "validation" in r]
    assert [r["step"] for r in validations] == [8, 16, 24, 32, 40, 48]


def _kill_and_resume(tmp_path, cfg, tear_history=False):
    """Train ``cfg`` uninterrupted, and again killed during step 13 (after the step-10 checkpoint) then resumed."""
    full = BNStage()
    Trainer(full, Pairs(), Pairs(32, seed=1), cfg, tmp_path / "full").fit()
    killed = BNStage()
    killed.kill_at = 13
    with pytest.raises(KeyboardInterrupt):
        Trainer(killed, Pairs(), Pairs(32, seed=1), cfg, tmp_path / "part").fit()
    if tear_history:
        with open(tmp_path / "part" / "history.jsonl", "a", encoding="utf-8") as f:
            f.write('{"step": 14, "epoch": 1, "lo')  # a line cut short by the kill
    resumed = BNStage()
    result = Trainer(resumed, Pairs(), Pairs(32, seed=1), cfg, tmp_path / "part").fit(resume=True)
    return full, resumed, result


def test_resume_with_cosine_and_ema_matches_an_uninterrupted_run_bit_for_bit(tmp_path):
    cfg = _cfg(lr_schedule="cosine", warmup_steps=5, ema_decay=0.9, select="final")
    full, resumed, result = _kill_and_resume(tmp_path, cfg)
    assert result.steps == 48
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_file(str(tmp_path / "full" / name)), load_file(str(tmp_path / "part" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_history(tmp_path / "part" / "history.jsonl") == read_history(tmp_path / "full" / "history.jsonl")


def test_resume_repairs_a_torn_last_history_line(tmp_path):
    full, resumed, result = _kill_and_resume(tmp_path, _cfg(), tear_history=True)
    lines = (tmp_path / "part" / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses again
    assert records == read_history(tmp_path / "full" / "history.jsonl")
    steps = [r["step"] for r in records if "validation" not in r]
    assert steps == list(range(1, 49))
    for a, b in zip(full.net.state_dict().values(), resumed.net.state_dict().values()):
        assert torch.equal(a, b)


def test_read_history_skips_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in read_history(path)] == [1, 2]
