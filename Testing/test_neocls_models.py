"""The classifier registry (neocls/models.py): every entry builds a network with the shared interface,
the baselines learn at 32^3, and PattenNet's encoder part is the autoencoder's encoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neonet_core.config import AEConfig, ClsConfig
from neonet_core.errors import NeoNetError
from neonet_core.neocls.models import CLASSIFIERS, build_classifier, classifier_names, get_classifier
from neonet_core.neocls.pattennet import ae_encoder_plan, build_ae_encoder, grad_cam
from neonet_core.neogen.autoencoder import build_autoencoder, encode_features

DEMO = __import__("pathlib").Path(__file__).resolve().parents[1] / "Resources" / "Models" / "neonet-demo"
BASELINES = [name for name, spec in CLASSIFIERS.items() if not spec.needs_autoencoder]


# --- the registry ---------------------------------------------------------------------------------
def test_registry_entries_and_unknown_names():
    assert classifier_names() == tuple(CLASSIFIERS)
    assert {"pattennet", "cnn", "cnn-image", "resnet18", "densenet121"} <= set(classifier_names())
    assert get_classifier("cnn").in_channels == 2 and get_classifier("cnn-image").in_channels == 1
    assert get_classifier("pattennet").needs_autoencoder and not get_classifier("resnet18").needs_autoencoder
    for name, spec in CLASSIFIERS.items():
        assert spec.name == name and spec.in_channels in (1, 2) and spec.description
        assert spec.patch_size is None or spec.patch_size > 0
    for bad in ("resnet999", None):
        with pytest.raises(NeoNetError, match="unknown classifier .*choose one of pattennet") as err:
            get_classifier(bad)
        assert isinstance(err.value, ValueError)  # so a bundle naming it is a BundleError (bundle.build)
    with pytest.raises(ValueError, match="resnet999"):
        build_classifier(ClsConfig(model="resnet999"))


@pytest.mark.parametrize("name", classifier_names())
def test_every_classifier_gives_logits_and_a_cam_layer_with_gradients(name):
    torch.manual_seed(0)
    spec = get_classifier(name)
    model = build_classifier(ClsConfig(model=name), AEConfig()).train()
    assert any(module is model.cam_layer for module in model.modules())
    assert "cam_layer" not in dict(model.named_children())  # a property: the state dict names each weight once
    store = {}

    def keep(_module, _inputs, output):
        output.retain_grad() if output.requires_grad else None
        store["out"] = output

    handle = model.cam_layer.register_forward_hook(keep)
    x = torch.rand(3, spec.in_channels, 32, 32, 32)
    logits = model(x)
    handle.remove()
    assert logits.shape == (3,) and logits.dtype == torch.float32
    F.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0, 1.0])).backward()
    assert store["out"].dim() == 5 and store["out"].grad is not None and float(store["out"].grad.abs().sum()) > 0
    grads = [p.grad for p in model.cam_layer.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    model.eval()
    logits, cam = grad_cam(model, x)
    assert cam.shape == (3, 32, 32, 32) and float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0 + 1e-6
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_take_smaller_patches(name):
    """The baselines downsample 8x: 16^3 patches work too (the old DenseNet121 needed 32^3)."""
    spec = get_classifier(name)
    model = build_classifier(ClsConfig(model=name)).eval()
    with torch.no_grad():
        assert model(torch.rand(2, spec.in_channels, 16, 16, 16)).shape == (2,)


# --- the baselines learn at 32^3 ------------------------------------------------------------------
def _blob_toy(n=32, size=32, seed=0):
    """Positives have a bright blob (random place near the centre) inside a tumour mask every case has."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.random((n, size, size, size)).astype(np.float32) * 0.4
    masks = np.zeros_like(images)
    c = size // 2
    masks[:, c - 6 : c + 6, c - 6 : c + 6, c - 6 : c + 6] = 1.0
    for i in np.flatnonzero(labels):
        z, y, x = rng.integers(c - 6, c + 1, size=3)
        images[i, z : z + 6, y : y + 6, x : x + 6] += 0.5
    return torch.from_numpy(np.stack([images, masks], 1)), torch.from_numpy(labels.astype(np.float32))


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[] if name == "cnn" else pytest.mark.slow) for name in BASELINES
])
def test_baseline_training_loss_falls_on_a_learnable_toy(name):
    """The training loss (train mode, as the engine logs it) falls from chance to near zero in 30 steps.
    (Eval-mode loss needs BatchNorm's running statistics to settle: more steps than a unit test.)"""
    torch.manual_seed(0)
    spec = get_classifier(name)
    x, y = _blob_toy()
    x = x[:, : spec.in_channels]
    model = build_classifier(ClsConfig(model=name))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        model.train()
        idx = torch.randperm(len(y), generator=gen)[:8]
        loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.3 * first and last < 0.1, (first, last)


# --- PattenNet's encoder part ----------------------------------------------------------------------
@pytest.mark.parametrize("ae_cfg", [AEConfig(), AEConfig(channels=(16, 32, 64), num_res_blocks=2), AEConfig(with_nonlocal_attn=True)],
                         ids=["tiny", "two-res-blocks", "nonlocal"])
def test_encoder_part_matches_the_autoencoder_arithmetically(ae_cfg):
    """Block names and shapes equal AutoencoderKL.encoder.blocks[:n]; the planned channels and grids
    are the real ones; no decoder is built."""
    torch.manual_seed(0)
    ae = build_autoencoder(ae_cfg).eval()
    plan = ae_encoder_plan(ae_cfg.channels, ae_cfg.num_res_blocks, ae_cfg.with_nonlocal_attn)
    assert len(plan) == len(ae.encoder.blocks) - 2
    encoder, channels, pool_steps = build_ae_encoder(ae_cfg, 0)
    theirs = {k: v.shape for k, v in torch.nn.Sequential(*list(ae.encoder.blocks)[: len(plan)]).state_dict().items()}
    assert {k: v.shape for k, v in encoder.state_dict().items()} == theirs
    assert channels == ae_cfg.channels[-1] and pool_steps == 0
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        for block, (ch, level) in zip(ae.encoder.blocks, plan):
            x = block(x)
            assert x.shape[1:] == (ch, *(16 // 2**level,) * 3)
    with pytest.raises(ValueError, match="encoder_blocks"):
        build_ae_encoder(ae_cfg, len(plan) + 1)


def test_pattennet_encoder_equals_the_autoencoder_after_load_and_stays_frozen():
    torch.manual_seed(0)
    ae_cfg = AEConfig()
    ae = build_autoencoder(ae_cfg).eval()
    x = torch.rand(4, 1, 16, 16, 16)
    for blocks in (0, 2):
        net = build_classifier(ClsConfig(model="pattennet", encoder_blocks=blocks), ae_cfg)
        net.load_encoder(ae)
        for mine, theirs in zip(net.encoder, ae.encoder.blocks):
            for (k, v), (k2, w) in zip(mine.state_dict().items(), theirs.state_dict().items()):
                assert k == k2 and torch.equal(v, w), k
        assert all(not p.requires_grad for p in net.encoder.parameters())
        net.train()
        assert not any(m.training for m in net.encoder.modules()) and net.head.training
    deepest = build_classifier(ClsConfig(model="pattennet", encoder_blocks=0), ae_cfg)
    deepest.load_encoder(ae.encoder)  # the encoder alone works too
    with torch.no_grad():
        assert torch.allclose(deepest.encode(x), encode_features(ae, x))
    # training steps change the head, never the frozen encoder
    net = build_classifier(ClsConfig(model="pattennet"), ae_cfg)
    net.load_encoder(ae)
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    head = net.head.weight.detach().clone()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    assert all(torch.equal(v, before[k]) for k, v in net.encoder.state_dict().items())
    assert not torch.equal(head, net.head.weight)
    trainable = build_classifier(ClsConfig(model="pattennet", freeze_encoder=False), ae_cfg)
    assert all(p.requires_grad for p in trainable.encoder.parameters())
    assert any(m.training for m in trainable.train().encoder.modules())


def test_pattennet_options_and_mask_channel():
    ae_cfg = AEConfig()
    assert len(build_classifier(ClsConfig(model="pattennet", num_dab=0), ae_cfg).dabs) == 0
    with pytest.raises(ValueError, match="adapter_channels"):
        build_classifier(ClsConfig(model="pattennet", adapter_channels=0), ae_cfg)
    bare = build_classifier(ClsConfig(model="pattennet", adapter_channels=0, encoder_blocks=0), ae_cfg)  # DABs on the encoder's 32 channels
    assert bare.head.in_features == 2 * ae_cfg.channels[-1]
    masked = build_classifier(ClsConfig(model="pattennet-mask"), ae_cfg).eval()
    x = torch.rand(2, 2, 16, 16, 16)
    with torch.no_grad():
        assert masked.features(x).shape == (2, ae_cfg.channels[0] + 1, 16, 16, 16)
        assert not torch.allclose(masked(x), masked(torch.cat([x[:, :1], 1 - x[:, 1:]], 1)))


def test_multiscale_features_are_every_level_of_the_whole_frozen_encoder():
    """``encoder_features="multiscale"``: the last block of each level, max-pooled to the deepest grid."""
    from neonet_core.neocls.pattennet import ae_level_taps

    ae_cfg = AEConfig()
    taps, channels = ae_level_taps(ae_cfg)
    assert taps == [1, 3, 5] and channels == sum(ae_cfg.channels)
    torch.manual_seed(0)
    ae = build_autoencoder(ae_cfg).eval()
    net = build_classifier(ClsConfig(model="pattennet", encoder_features="multiscale"), ae_cfg).eval()
    net.load_encoder(ae)
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        f = net.encode(x)
        assert f.shape == (2, channels, 8, 8, 8)
        h, outs = x, []
        for block in list(ae.encoder.blocks)[:6]:
            h = block(h)
            outs.append(h)
        assert torch.allclose(f[:, :8], F.adaptive_max_pool3d(outs[1], 8), atol=1e-5)  # level 0 (full grid)
        assert torch.allclose(f[:, 24:], outs[5], atol=1e-5)  # the deepest level, as is
    assert not any(p.requires_grad for p in net.encoder.parameters())
    with pytest.raises(ValueError, match="encoder_features"):
        build_classifier(ClsConfig(model="pattennet", encoder_features="pyramid"), ae_cfg)


def test_region_pooling_separates_tumour_shell_and_outside():
    from neonet_core.neocls.pooling import region_pool, region_weights

    mask = torch.zeros(1, 1, 16, 16, 16)
    mask[0, 0, 6:10, 6:10, 6:10] = 1
    w = region_weights(mask, (16, 16, 16), shell=2)
    assert torch.allclose(w.sum(1), torch.ones(1, 16, 16, 16))
    assert w[0, 0].sum() == 64 and w[0, 1].sum() == 8 ** 3 - 64 and w[0, 1, 8, 8, 8] == 0 and w[0, 1, 4, 8, 8] == 1
    f = torch.zeros(1, 1, 16, 16, 16)
    f[0, 0, 4, 8, 8] = 5.0  # one bright voxel in the shell
    pooled = region_pool(f, w)  # (tumour mean, max, shell mean, max, outside mean, max)
    assert pooled.tolist()[0] == pytest.approx([0, 0, 5 / 448, 5, 0, 0])
    net = build_classifier(ClsConfig(model="pattennet-regions"), AEConfig()).eval()
    assert get_classifier("pattennet-regions").in_channels == 2 and net.head.in_features == 6 * 32
    x = torch.rand(2, 2, 32, 32, 32)
    with torch.no_grad():
        assert net(x).shape == (2,)
    with pytest.raises(ValueError, match="regions"):
        from neonet_core.neocls.pattennet import PattenNet

        PattenNet(torch.nn.Identity(), 1, in_channels=1, dab_channels=None, adapter_layers=0, pooling="regions")


def test_demo_bundle_weights_load_into_the_registry_network():
    """The shipped bundle's state dict (names and shapes) loads strictly into the rebuilt network."""
    import json

    from safetensors.torch import load_file

    config = json.loads((DEMO / "bundle.json").read_text())["networks"]["cls"]["config"]
    cls_cfg = ClsConfig(**{k: v for k, v in config["cls"].items() if k in ClsConfig.__dataclass_fields__ and k != "train"})
    ae_cfg = AEConfig(channels=tuple(config["ae"]["channels"]), latent_channels=config["ae"]["latent_channels"],
                      num_res_blocks=config["ae"]["num_res_blocks"], norm_num_groups=config["ae"]["norm_num_groups"],
                      with_nonlocal_attn=config["ae"]["with_nonlocal_attn"])
    net = build_classifier(cls_cfg, ae_cfg)
    net.load_state_dict(load_file(str(DEMO / "cls.safetensors")))  # strict
