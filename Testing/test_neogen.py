"""NeoGen on a tiny real cohort (NIfTI files through SimpleITK): training, bundle, generation, balancing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from neonet_core.bundle import load_bundle
from neonet_core.config import AEConfig, LDMConfig, get_preset, load_config, section_from_dict
from neonet_core.engine import TrainConfig, Trainer, collate
from neonet_core.manifest import read_manifest
from neonet_core.neogen import build_autoencoder, build_controlnet, build_unet, decode_latents, encode_features
from neonet_core.neogen.controlnet import controlled_unet_output, init_from_unet
from neonet_core.augment import FLIPS, flip_variant as flip
from neonet_core.neogen.data import ImagePatches, LatentCache
from neonet_core.neogen.generate import balance_cases, generate_patches, load_neogen
from neonet_core.neogen.stages import AEStage, ControlNetStage, LDMStage
from neonet_core.neogen.training import latent_cache
from neonet_core.patches import extract_patches
from neonet_core.splits import hold_out
from neonet_core.workflows.training import train_stage
from test_neogen_data import make_cohort

STEPS = 3  # sampling steps in tests


@pytest.fixture(scope="module", autouse=True)
def quiet(quiet_single_thread):
    """No progress output; one torch thread (conftest.quiet_single_thread)."""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("cohort"))  # 5 PNI-, 3 PNI+


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    short = {"epochs": 1, "batch_size": 2, "lr": 1e-3, "log_every": 1}
    data = {"preset": "tiny", "ae": {"train": {**short, "lr": 2e-3}}, "ldm": {"train": short}, "controlnet": {"train": short}}
    path = tmp_path_factory.mktemp("config") / "neogen.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def bundle(cohort, config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bundle"
    for stage in ("ae", "ldm", "controlnet"):
        train_stage(stage, cohort, config_file, out, "cpu")
    return out


@pytest.fixture(scope="module")
def records(cohort):
    return extract_patches(read_manifest(cohort), get_preset("tiny"))


def test_bundle_round_trip(bundle):
    b = load_bundle(bundle)
    assert set(b.networks) == {"autoencoder", "ldm", "controlnet"}
    ae = b.load_into("autoencoder", build_autoencoder(section_from_dict(AEConfig, b.network_config("autoencoder"))))
    ldm_net = b.network_config("ldm")
    unet = b.load_into("ldm", build_unet(section_from_dict(LDMConfig, ldm_net), ldm_net["latent_channels"]))
    assert ldm_net["latent_shape"] == [8, 8, 8] and ldm_net["scale_factor"] > 0
    assert ldm_net["autoencoder_sha256"] == b.networks["autoencoder"]["sha256"]
    from safetensors.torch import load_file

    best = load_file(str(bundle / "runs" / "ae" / "best.safetensors"))
    for key, value in ae.state_dict().items():
        torch.testing.assert_close(value, best[f"autoencoder.{key}"], rtol=0, atol=0)
    assert unet.num_class_embeds == 2
    metrics = b.info["training"]
    assert {"psnr", "ssim"} <= set(metrics["ae"]["validation"]) and metrics["ae"]["train_cases"] == 6 and metrics["ae"]["val_cases"] == 2
    assert b.info["config"]["controlnet"]["conditioning_channels"] == [16, 32]
    models = load_neogen(bundle)
    assert models.latent_shape == (8, 8, 8) and models.patch_size == 32


def test_autoencoder_round_trip_keeps_shape_and_range(bundle, records):
    b = load_bundle(bundle)
    ae = b.load_into("autoencoder", build_autoencoder(section_from_dict(AEConfig, b.network_config("autoencoder"))))
    x = torch.from_numpy(records.images[:3])[:, None]
    with torch.no_grad():
        mu, sigma = ae.encode(x)
        recon = decode_latents(ae, mu)
        features = encode_features(ae, x)
    assert mu.shape == sigma.shape == (3, get_preset("tiny").ae.latent_channels, 8, 8, 8)
    assert recon.shape == x.shape and recon.dtype == torch.float32
    assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0 and torch.isfinite(recon).all()
    assert features.shape == (3, 32, 8, 8, 8)


def test_latent_cache_holds_every_flip_variant(bundle, cohort, records):
    cache = LatentCache.read(bundle / "runs" / "latents.safetensors")
    assert sorted(cache.case_ids) == sorted(records.case_ids)
    assert tuple(cache.tensors["mu"].shape) == (8, len(FLIPS), get_preset("tiny").ae.latent_channels, 8, 8, 8)
    assert cache.tensors["tumour"].shape == (8, 32, 32, 32) and int(cache.tensors["val"].sum()) == 2
    b = load_bundle(bundle)
    ae = b.load_into("autoencoder", build_autoencoder(section_from_dict(AEConfig, b.network_config("autoencoder"))))
    x = torch.from_numpy(records.select([cache.case_ids[2]]).images[0])[None, None]
    with torch.no_grad():
        for v in (0, 5):
            torch.testing.assert_close(cache.tensors["mu"][2, v], ae.encode(flip(x, v, 2))[0][0], rtol=1e-4, atol=1e-5)
    train_mu = cache.tensors["mu"][torch.from_numpy(cache.indices("train"))]
    assert cache.scale_factor() == pytest.approx(1.0 / float(train_mu.std()), rel=1e-5)
    assert b.network_config("ldm")["scale_factor"] == pytest.approx(cache.scale_factor(), rel=1e-6)
    before = (bundle / "runs" / "latents.safetensors").stat().st_mtime_ns
    cases = read_manifest(cohort)
    train, val = hold_out(cases, 0.2, 0, bundle).apply(cases)  # the bundle's saved hold-out
    latent_cache(bundle, records.of_cases(train), records.of_cases(val), "cpu")  # matching cache: reused, not rebuilt
    assert (bundle / "runs" / "latents.safetensors").stat().st_mtime_ns == before
    head = (bundle / "runs" / "latents.safetensors").read_bytes()[:8]
    assert head[:2] != b"\x80\x02" and not head.startswith(b"PK")  # safetensors, not a pickle / torch zip


def test_controlnet_at_initialisation_leaves_the_unet_unchanged():
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    unet = build_unet(cfg.ldm, cfg.ae.latent_channels).eval()
    controlnet = init_from_unet(build_controlnet(cfg.controlnet, cfg.ldm, cfg.ae), unet).eval()
    x, t = torch.randn(2, cfg.ae.latent_channels, 8, 8, 8), torch.tensor([10, 700])
    labels, cond = torch.tensor([0, 1]), (torch.rand(2, 4, 32, 32, 32) > 0.5).float()
    with torch.no_grad():
        plain = unet(x=x, timesteps=t, class_labels=labels)
        controlled = controlled_unet_output(unet, controlnet, x, t, labels, cond, 1.0)
        down, mid = controlnet(x=x, timesteps=t, controlnet_cond=cond, class_labels=labels)
    torch.testing.assert_close(controlled, plain, rtol=0, atol=0)
    assert mid.shape[-3:] == (2, 2, 2) and all(float(d.abs().max()) == 0.0 for d in down)
    shared = [k for k in controlnet.state_dict() if k in unet.state_dict()]
    assert len(shared) > 50 and all(torch.equal(controlnet.state_dict()[k], unet.state_dict()[k]) for k in shared)


def test_controlnet_needs_one_conditioning_stage_per_ae_downsampling():
    cfg = get_preset("tiny")
    with pytest.raises(ValueError, match="needs 2 entries"):
        build_controlnet(dataclasses.replace(cfg.controlnet, conditioning_channels=(16, 32, 64)), cfg.ldm, cfg.ae)


def _fit(stage, train_set, tmp_path, name, **kw):
    cfg = TrainConfig(**{"epochs": 3, "batch_size": 2, "lr": 1e-3, "log_every": 100, "checkpoint_every": 100, **kw})
    return Trainer(stage, train_set, None, cfg, tmp_path / name, "cpu").fit()


def test_few_steps_lower_the_autoencoder_loss(records, tmp_path):
    data = ImagePatches(records.take(range(4)))
    batch = collate([data[i] for i in range(4)])
    torch.manual_seed(0)
    stage = AEStage(get_preset("tiny").ae)
    before = stage.validate([batch])
    _fit(stage, data, tmp_path, "ae", lr=2e-3, epochs=5)
    after = stage.validate([batch])
    assert after["l1"] < 0.8 * before["l1"] and after["psnr"] > before["psnr"] + 1.0


def test_few_steps_lower_the_diffusion_losses(bundle, tmp_path):
    cache = LatentCache.read(bundle / "runs" / "latents.safetensors")
    data = cache.dataset("train")
    batch = collate([data[i] for i in range(len(data))])
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    ldm = LDMStage(cfg.ldm, cache.latent_channels, cache.latent_shape, cache.scale_factor())
    before = ldm.validate([batch])["loss"]
    _fit(ldm, data, tmp_path, "ldm")
    after = ldm.validate([batch])["loss"]
    assert after < 0.8 * before

    cn_cfg = dataclasses.replace(cfg.controlnet, tumour_loss_weight=3.0)
    cn = ControlNetStage(cn_cfg, cfg.ldm, cfg.ae, ldm.unet, cache.latent_shape, cache.scale_factor())
    before_cn = cn.validate([batch])["loss"]
    unet_before = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    _fit(cn, data, tmp_path, "cn", epochs=12)
    assert cn.validate([batch])["loss"] < before_cn
    assert all(torch.equal(v, ldm.unet.state_dict()[k]) for k, v in unet_before.items())  # the UNet stays frozen


@pytest.mark.parametrize("stage_name", ["ldm", "controlnet"])
def test_resume_reproduces_an_uninterrupted_run(bundle, tmp_path, stage_name):
    cache = LatentCache.read(bundle / "runs" / "latents.safetensors")
    cfg = get_preset("tiny")

    def make():
        torch.manual_seed(0)
        ldm = LDMStage(cfg.ldm, cache.latent_channels, cache.latent_shape, cache.scale_factor())
        if stage_name == "ldm":
            return ldm, ldm.unet
        cn = ControlNetStage(cfg.controlnet, cfg.ldm, cfg.ae, ldm.unet, cache.latent_shape, cache.scale_factor())
        return cn, cn.controlnet

    tcfg = TrainConfig(epochs=2, batch_size=2, lr=1e-3, checkpoint_every=2, log_every=1)
    full, full_net = make()
    Trainer(full, cache.dataset("train"), None, tcfg, tmp_path / "full", "cpu").fit()
    part, _ = make()
    trainer = Trainer(part, cache.dataset("train"), None, tcfg, tmp_path / "part", "cpu")
    trainer.total_steps = 3  # killed after the step-2 checkpoint
    trainer.fit()
    resumed, resumed_net = make()
    result = Trainer(resumed, cache.dataset("train"), None, tcfg, tmp_path / "part", "cpu").fit(resume=True)
    assert result.steps == 6
    for a, b in zip(full_net.state_dict().values(), resumed_net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_generated_patches_have_shape_finite_values_and_follow_the_seed(bundle, records):
    models = load_neogen(bundle)
    masks = [(records.tumour[i], records.anatomy[i]) for i in (5, 6)]
    a = generate_patches(models, masks, label=1, seed=3, steps=STEPS, batch_size=2, progress=False)
    b = generate_patches(models, masks, label=1, seed=3, steps=STEPS, batch_size=1, progress=False)
    c = generate_patches(models, masks, label=1, seed=4, steps=STEPS, progress=False)
    assert a.shape == (2, 32, 32, 32) and a.dtype == np.float32 and np.isfinite(a).all()
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_allclose(a, b, atol=1e-4)  # patch i depends on (seed, i), not on the batch size
    assert np.abs(a - c).max() > 1e-3
    ddpm = generate_patches(models, masks[:1], label=0, seed=3, steps=STEPS, scheduler="ddpm", progress=False)
    assert ddpm.shape == (1, 32, 32, 32) and np.isfinite(ddpm).all()
    with pytest.raises(ValueError, match="shape"):
        generate_patches(models, [(np.zeros((16, 16, 16)), None)], label=1, progress=False)
    with pytest.raises(ValueError, match="label"):
        generate_patches(models, masks, label=2, progress=False)


def test_balancing_makes_the_training_fold_one_to_one_and_never_uses_validation_cases(bundle, cohort, tmp_path):
    from neonet_core.io import read_volume
    from neonet_core.patches import case_patch
    from neonet_core.neogen.generate import transform_mask

    cases = read_manifest(cohort)
    validation = {"case01", "case06"}
    train = [c for c in cases if c.case_id not in validation]  # 4 PNI-, 2 PNI+
    synthetic = balance_cases(bundle, train, tmp_path / "fold0", seed=7, steps=STEPS)
    assert len(synthetic) == 2
    labels = [c.label for c in train + synthetic]
    assert labels.count(0) == labels.count(1) == 4
    positives = {c.case_id for c in train if c.label == 1}
    for s in synthetic:
        assert s.synthetic and s.label == 1 and s.source_case in positives and s.source_case not in validation
        assert s.patient_id == next(c.patient_id for c in train if c.case_id == s.source_case)
        assert s.case_id not in validation and s.image.is_file() and s.tumor_mask.is_file() and s.anatomy_mask.is_file()
    first = synthetic[0]
    image, tumour = read_volume(first.image), read_volume(first.tumor_mask)
    source = next(c for c in train if c.case_id == first.source_case)
    crop, _ = case_patch(source, get_preset("tiny"))
    grid = crop.roi.patch_geometry(32)
    assert image.same_grid(grid) and tumour.same_grid(grid)
    assert tumour.array.sum() == crop.tumour_patch.array.sum()  # a flipped / rotated copy of the source's mask
    assert 0.0 <= image.array.min() and image.array.max() <= 1.0

    again = balance_cases(bundle, train, tmp_path / "again", seed=7, steps=STEPS)
    assert [s.case_id for s in again] == [s.case_id for s in synthetic]
    np.testing.assert_array_equal(read_volume(again[1].image).array, read_volume(synthetic[1].image).array)
    assert balance_cases(bundle, train[:2] + train[4:], tmp_path / "even", seed=7) == []  # already 1:1


def _cli(argv):
    from neonet_core.cli.main import build_parser

    args = build_parser().parse_args(argv)
    return args.func(args)


def test_cli_generate_and_balance(bundle, cohort, tmp_path, capsys):
    assert _cli(["generate", "--bundle", str(bundle), "--manifest", str(cohort), "--label", "1", "--count", "4",
                 "--out", str(tmp_path / "gen"), "--steps", str(STEPS), "--device", "cpu"]) == 0
    rows = read_manifest(tmp_path / "gen" / "manifest.csv")
    assert len(rows) == 4 and all(r.synthetic and r.label == 1 and r.source_case in {"case05", "case06", "case07"} for r in rows)
    assert _cli(["balance", "--bundle", str(bundle), "--manifest", str(cohort), "--out", str(tmp_path / "bal"),
                 "--steps", str(STEPS), "--device", "cpu"]) == 0
    rows = read_manifest(tmp_path / "bal" / "manifest.csv")
    assert [r.label for r in rows].count(0) == [r.label for r in rows].count(1) == 5 and sum(r.synthetic for r in rows) == 2
    assert "5 PNI- / 5 PNI+ (2 synthetic)" in capsys.readouterr().out
    from neonet_core.errors import InputError

    with pytest.raises(InputError, match="already exists"):
        _cli(["balance", "--bundle", str(bundle), "--manifest", str(cohort), "--out", str(tmp_path / "bal")])


def test_diffusion_stage_refuses_a_bundle_without_autoencoder(cohort, tmp_path):
    from neonet_core.errors import NeoNetError

    with pytest.raises(NeoNetError, match="no NeoNet bundle|not a NeoNet bundle|no such bundle|train ae"):
        train_stage("ldm", cohort, "tiny", tmp_path / "empty", "cpu")


@pytest.mark.slow
def test_cli_trains_every_stage_with_resume_and_adversarial_loss(cohort, tmp_path, capsys):
    config = tmp_path / "adv.json"
    short = {"epochs": 1, "batch_size": 3}
    config.write_text(json.dumps({"preset": "tiny", "ae": {"adversarial_weight": 0.1, "adversarial_warmup_epochs": 0, "train": short},
                                  "ldm": {"train": short}, "controlnet": {"train": short}}))
    out = tmp_path / "bundle"
    for stage in ("ae", "ldm", "controlnet"):
        assert _cli(["train", stage, "--manifest", str(cohort), "--config", str(config), "--out", str(out)]) == 0
        assert f"NeoGen {stage} trained" in capsys.readouterr().out
    assert _cli(["train", "ldm", "--manifest", str(cohort), "--config", str(config), "--out", str(out), "--resume"]) == 0
    history = [json.loads(line) for line in (out / "runs" / "ae" / "history.jsonl").read_text().splitlines()]
    assert any("loss_disc" in h for h in history)
    assert set(load_bundle(out).networks) == {"autoencoder", "ldm", "controlnet"}
    assert load_config(str(config)).ae.adversarial_weight == 0.1


@pytest.mark.slow
def test_cli_generate_writes_the_quality_report(bundle, cohort, tmp_path):
    assert _cli(["generate", "--bundle", str(bundle), "--manifest", str(cohort), "--label", "0", "--count", "2",
                 "--out", str(tmp_path / "gen"), "--steps", str(STEPS), "--device", "cpu", "--report"]) == 0
    report = tmp_path / "gen" / "report"
    text = (report / "report.md").read_text()
    for png in ("gallery.png", "adherence.png", "diversity.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in text
    assert "Frechet distance" in text and "own NeoGen autoencoder" in text and "Otsu" in text
    assert "| detectability, AUC real vs synthetic |" in text and "| class fidelity, AUC synthetic PNI+ vs PNI- |" in text
    row = next(line for line in text.splitlines() if line.startswith("| mask adherence"))
    assert 0.0 <= float(row.split("|")[2]) <= 1.0
