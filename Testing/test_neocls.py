"""NeoCls networks: dual attention block, PattenNet's frozen encoder, baselines, Grad-CAM, augmentation."""

import numpy as np
import pytest
import torch

from neonet_core.augment import AugmentConfig
from neonet_core.config import AEConfig, ClsConfig, NeoNetConfig, TrainConfig
from neonet_core.neocls.models import build_classifier
from neonet_core.neocls.dab import DualAttentionBlock3d, PositionAttention3d
from neonet_core.patches import PatchSet
from neonet_core.neocls.pattennet import grad_cam
from neonet_core.neocls.stage import predict_probabilities, train_classifier
from neonet_core.neogen.autoencoder import build_autoencoder, encode_features


def test_dab_is_identity_with_zero_gates():
    torch.manual_seed(0)
    block = DualAttentionBlock3d(16)
    x = torch.randn(2, 16, 4, 5, 6)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.gamma_position.fill_(0.5)
        block.gamma_channel.fill_(0.3)
    y = block(x)
    assert y.shape == x.shape
    assert float((y - x).detach().abs().max()) > 1e-3


def test_sdpa_matches_explicit_attention():
    torch.manual_seed(1)
    pa = PositionAttention3d(16).double()
    x = torch.randn(2, 16, 4, 4, 3, dtype=torch.float64)
    fused, explicit = pa(x), pa(x, explicit=True)
    assert fused.shape == x.shape
    assert torch.allclose(fused, explicit, atol=1e-10)
    # rows of the explicit attention are probability distributions over the N = 48 voxels
    attn = pa.attention(x)
    assert attn.shape == (2, 48, 48)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 48, dtype=torch.float64))
    block = DualAttentionBlock3d(16).double()
    with torch.no_grad():
        block.gamma_position.fill_(1.0)
        block.gamma_channel.fill_(1.0)
    assert torch.allclose(block(x), block(x, explicit=True), atol=1e-10)


def test_pattennet_encoder_depth_and_adapter_grid():
    """encoder_blocks=0 takes the deepest features; the tiny default (2) takes full-resolution ones and
    the adapter max-pools them to the deepest grid, so the DABs attend over the same grid either way."""
    torch.manual_seed(0)
    ae_cfg = AEConfig()
    ae = build_autoencoder(ae_cfg).eval()
    x = torch.rand(2, 1, 16, 16, 16)
    deepest = build_classifier(ClsConfig(model="pattennet", encoder_blocks=0), ae_cfg).eval()
    deepest.load_encoder(ae)
    shallow = build_classifier(ClsConfig(model="pattennet"), ae_cfg).eval()
    shallow.load_encoder(ae)
    assert ClsConfig().encoder_blocks == 2
    with torch.no_grad():
        assert torch.allclose(deepest.encode(x), encode_features(ae, x))
        assert deepest.encode(x).shape == (2, ae_cfg.channels[-1], 4, 4, 4)
        assert shallow.encode(x).shape == (2, ae_cfg.channels[0], 16, 16, 16)
        for net in (deepest, shallow):
            assert net.adapter(net.encode(x)).shape == (2, ClsConfig().adapter_channels, 4, 4, 4)
            assert net(x).shape == (2,)
    assert len(build_classifier(ClsConfig(model="pattennet", num_dab=0), ae_cfg).dabs) == 0
    with pytest.raises(ValueError, match="adapter_channels"):
        build_classifier(ClsConfig(model="pattennet", adapter_channels=0), ae_cfg)


def _toy_patches(n=16, size=16, seed=0) -> PatchSet:
    """A learnable toy: positives have a bright blob in the centre."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.random((n, size, size, size)).astype(np.float32) * 0.3
    c = size // 2
    images[labels == 1, c - 3 : c + 3, c - 3 : c + 3, c - 3 : c + 3] += 0.6
    ids = [f"c{i}" for i in range(n)]
    return PatchSet(ids, ids, images, labels)


def test_frozen_encoder_unchanged_by_training(tmp_path):
    cfg = NeoNetConfig()
    cfg.cls.model = "pattennet"
    cfg.preprocess.patch_size = 16
    cfg.cls.train = TrainConfig(epochs=2, batch_size=4, lr=1e-2)
    torch.manual_seed(3)
    ae = build_autoencoder(cfg.ae)
    before = {k: v.clone() for k, v in ae.encoder.state_dict().items()}
    model, result = train_classifier(_toy_patches(), None, cfg, tmp_path / "run", autoencoder=ae)
    assert result.steps == 8
    for mine, theirs in zip(model.encoder, ae.encoder.blocks):
        for (k, v), (_, w) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert torch.equal(v, w), k
    for k, v in ae.encoder.state_dict().items():
        assert torch.equal(v, before[k])
    # ... while the trainable parts did change
    torch.manual_seed(cfg.cls.train.seed)
    fresh = build_classifier(cfg.cls, cfg.ae)
    assert not torch.equal(fresh.head.weight, model.head.weight)
    assert all(not p.requires_grad for p in model.encoder.parameters())


def test_unfrozen_encoder_trains(tmp_path):
    cfg = NeoNetConfig()
    cfg.cls.model = "pattennet"
    cfg.cls.freeze_encoder = False
    cfg.cls.train = TrainConfig(epochs=1, batch_size=4, lr=1e-2)
    ae = build_autoencoder(cfg.ae)
    model, _ = train_classifier(_toy_patches(8), None, cfg, tmp_path / "run", autoencoder=ae)
    first = next(iter(model.encoder[0].parameters()))
    assert not torch.equal(first, next(iter(ae.encoder.blocks[0].parameters())))


@pytest.mark.parametrize("name", ["pattennet", "densenet121", "resnet18"])
def test_models_and_grad_cam_shapes(name):
    torch.manual_seed(0)
    model = build_classifier(ClsConfig(model=name), AEConfig()).eval()
    x = torch.rand(2, 1, 32, 32, 32)
    logits, cam = grad_cam(model, x)
    assert logits.shape == (2,) and cam.shape == (2, 32, 32, 32)
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0 + 1e-6
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_finds_the_blob(tmp_path):
    """After training on the toy, PattenNet's Grad-CAM is larger on the blob than in the corners."""
    cfg = NeoNetConfig()
    cfg.cls.model = "pattennet"
    cfg.cls.freeze_encoder = False
    cfg.cls.augment = AugmentConfig.off()
    cfg.cls.train = TrainConfig(epochs=15, batch_size=8, lr=3e-3)
    data = _toy_patches(16)
    model, _ = train_classifier(data, None, cfg, tmp_path / "run", autoencoder=build_autoencoder(cfg.ae))
    p, spread = predict_probabilities(model, data.images, tta=True)
    assert p.shape == spread.shape == (16,)
    assert p[data.labels == 1].mean() > p[data.labels == 0].mean() + 0.2
    _, cam = grad_cam(model, torch.from_numpy(data.images[data.labels == 1])[:, None])
    centre = cam[:, 5:11, 5:11, 5:11].mean()
    assert float(centre) > float(cam.mean())


def test_classifier_augmentation_is_lossless_and_treats_synthetic_patches_like_real_ones():
    """The training step's augmentation (ClsConfig.augment) changes every item alike; the mask channel
    keeps its values (geometry only) and the geometry keeps every voxel (no interpolation)."""
    from neonet_core.augment import augment_batch

    cfg = ClsConfig()
    assert cfg.augment.enabled and cfg.augment.geometry_is_lossless()
    torch.manual_seed(0)
    x = torch.rand(4, 2, 8, 8, 8)
    x[:, 1] = (x[:, 1] > 0.5).float()
    torch.manual_seed(1)
    out = augment_batch(x, cfg.augment, intensity_channels=[0])
    assert all(not torch.equal(out[i], x[i]) for i in range(4))  # no item (real or synthetic) is left out
    for i in range(4):
        assert torch.equal(out[i, 1].sum(), x[i, 1].sum()) and set(out[i, 1].unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(1)
    assert torch.equal(augment_batch(x, cfg.augment, intensity_channels=[0]), out)  # same seed, same augmentation

def test_round_trip_control_swaps_real_majority_patches_as_often_as_synthetic_ones_appear():
    """With synthetic (minority-class, decoded) patches in training, real majority-class patches are
    swappable for their autoencoder round trip with probability n_synthetic / n_real_majority; real
    minority-class and synthetic patches are never swapped; without synthetic patches nothing is."""
    from neonet_core.neocls.stage import ClsStage, _training_dataset
    from neonet_core.neogen.autoencoder import round_trip

    rng = np.random.default_rng(0)
    n_pos, n_neg, n_syn = 3, 7, 4
    labels = np.array([1] * n_pos + [0] * n_neg + [1] * n_syn)
    synthetic = np.array([False] * (n_pos + n_neg) + [True] * n_syn)
    images = rng.random((len(labels), 16, 16, 16)).astype(np.float32)
    ids = [f"c{i}" for i in range(len(labels))]
    patches = PatchSet(ids, ids, images, labels, np.zeros_like(images), np.zeros_like(images), synthetic,
                       [f"c0" if s else "" for s in synthetic], [None] * len(labels))
    torch.manual_seed(0)
    ae = build_autoencoder(AEConfig()).eval()
    dataset, p = _training_dataset(patches, 2, ae)
    assert p == pytest.approx(n_syn / n_neg)
    swappable = np.array([bool(dataset[i]["swappable"]) for i in range(len(labels))])
    assert swappable.tolist() == ((labels == 0) & ~synthetic).tolist()
    decoded = round_trip(ae, images[swappable])
    for k, i in enumerate(np.flatnonzero(swappable)):
        item = dataset[i]
        assert torch.allclose(item["alternate"][0], torch.from_numpy(decoded[k])) and torch.equal(item["alternate"][1], item["image"][1])
    assert _training_dataset(patches.take(np.flatnonzero(~synthetic)), 2, ae)[1] == 0.0
    # the training step swaps exactly the swappable items it draws (p = 1 here)
    stage = ClsStage(build_classifier(ClsConfig(model="cnn")), ClsConfig(augment=AugmentConfig.off()), swap_probability=1.0)
    batch = {k: torch.stack([dataset[i][k] for i in range(len(labels))]) for k in ("image", "alternate", "swappable", "label")}
    seen = {}
    stage.model.register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0].clone()))
    stage.training_step({"cls": stage.model}, batch, 0)
    for i in range(len(labels)):
        assert torch.equal(seen["x"][i], batch["alternate"][i] if swappable[i] else batch["image"][i])
