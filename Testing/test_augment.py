"""The one augmentation (neonet_core.augment): lossless geometry, channels and extras, determinism,
distribution, the flip variants, and the legacy classifier/NeoSeg/NeoGen augmentations it replaces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neonet_core.augment import (FLIPS, AugmentConfig, apply_exact_geometry, augment_batch, flip_variant, orient,
                                 sample_params)

GEOMETRY_ONLY = dict(rotate_deg=0.0, gain=0.0, offset=0.0)


def _batch(b=6, c=1, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, n, n, n, generator=g)


def _sorted_values(t):
    return t.flatten(1).sort(1).values


@pytest.mark.parametrize("rot90", ["none", "inplane", "all"])
def test_roll_geometry_is_lossless_and_invertible(rot90):
    cfg = AugmentConfig(rot90=rot90, shift=3, shift_mode="roll", **GEOMETRY_ONLY)
    assert cfg.geometry_is_lossless() and not AugmentConfig().geometry_is_lossless()
    x = _batch(b=16)
    torch.manual_seed(5)
    p = sample_params(16, x.shape[2:], cfg)
    torch.manual_seed(5)
    out = augment_batch(x, cfg)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(_sorted_values(out), _sorted_values(x))  # the same values as a multiset, per item
    assert not torch.equal(out, x)
    back = torch.stack([apply_exact_geometry(out[i], p, i, inverse=True) for i in range(16)])
    assert torch.equal(back, x)


def test_lossless_preset():
    cfg = AugmentConfig.lossless()
    assert cfg.rotate_deg == 0 and cfg.rot90 == "inplane" and cfg.shift > 0 and cfg.flip_axes == (0, 1, 2)
    assert cfg.gain > 0 and cfg.offset > 0 and cfg.geometry_is_lossless()
    x = _batch()
    torch.manual_seed(0)
    geo = augment_batch(x, AugmentConfig.lossless(intensity=0.0))
    assert torch.equal(_sorted_values(geo), _sorted_values(x))
    torch.manual_seed(0)
    full = augment_batch(x, cfg)  # gain and offset are affine: the ranks within an item are kept
    assert torch.equal(full.flatten(1).argsort(1), geo.flatten(1).argsort(1))


def test_rotations_are_proper_and_cover_the_group():
    """'all' reaches 24 distinct orientations, 'inplane' 4; together with flips, all 48 / 8 x 2."""
    x = torch.arange(27.0).view(1, 1, 3, 3, 3).expand(400, 1, 3, 3, 3).contiguous()
    torch.manual_seed(0)
    rots = augment_batch(x, AugmentConfig(rot90="all", flip_prob=0.0, **GEOMETRY_ONLY))
    assert len({tuple(r.flatten().tolist()) for r in rots}) == 24
    with_flips = augment_batch(x, AugmentConfig(rot90="all", **GEOMETRY_ONLY))
    assert len({tuple(r.flatten().tolist()) for r in with_flips}) == 48
    torch.manual_seed(0)
    inplane = augment_batch(x, AugmentConfig(rot90="inplane", flip_prob=0.0, **GEOMETRY_ONLY))
    assert len({tuple(r.flatten().tolist()) for r in inplane}) == 4
    assert all(torch.equal(r[0, 1].flatten().sort().values, x[0, 0, 1].flatten().sort().values) for r in inplane)  # axial slices stay


def test_rot90_keeps_shape_of_non_cubic_patches():
    x = torch.rand(32, 1, 4, 6, 8)
    for mode in ("inplane", "all"):
        torch.manual_seed(1)
        out = augment_batch(x, AugmentConfig(rot90=mode, **GEOMETRY_ONLY))
        assert out.shape == x.shape and torch.equal(_sorted_values(out), _sorted_values(x))


def test_edge_shift_repeats_the_border_and_invents_nothing():
    x = torch.arange(8.0).view(1, 1, 1, 1, 8).expand(64, 1, 2, 2, 8).contiguous()
    torch.manual_seed(0)
    cfg = AugmentConfig(flip_prob=0.0, shift=2, shift_mode="edge", **GEOMETRY_ONLY)
    p = sample_params(64, x.shape[2:], cfg)
    torch.manual_seed(0)
    out = augment_batch(x, cfg)
    for i in range(64):
        s = p.shift[i][2]
        expected = torch.arange(8.0).sub(s).clamp(0, 7)
        assert torch.equal(out[i, 0, 0, 0], expected)
    assert set(out.unique().tolist()) <= set(range(8))


def test_geometry_alike_on_image_mask_channel_and_extras_intensity_only_on_image():
    n = 10
    img = _batch(b=8, c=1, n=n)
    mask = (torch.rand(8, n, n, n, generator=torch.Generator().manual_seed(1)) > 0.6).float()
    x = torch.cat([img, mask[:, None]], 1)  # channel 1: the tumour mask
    labels = (mask * 3).long()  # an integer extra
    for cfg in (AugmentConfig(rot90="all", shift=2, gain=0.3, offset=0.3, gamma=0.3, bias_field=0.2, noise_std=0.05, rotate_deg=0),
                AugmentConfig(rot90="inplane", shift=1, shift_mode="edge", gain=0.3, offset=0.3, rotate_deg=15)):
        torch.manual_seed(3)
        out, (lab, m2) = augment_batch(x, cfg, intensity_channels=[0], extras=[labels, mask])
        assert lab.dtype == torch.int64 and lab.shape == labels.shape
        assert torch.equal(out[:, 1], m2)  # mask channel and extra mask: the same geometry
        assert torch.equal(lab, (m2 * 3).long())
        assert set(out[:, 1].unique().tolist()) <= {0.0, 1.0}  # no intensity, no interpolation on masks
        # the image channel got the intensity transforms, the mask did not
        torch.manual_seed(3)
        geo = augment_batch(x, AugmentConfig(**{**cfg.__dict__, "gain": 0, "offset": 0, "gamma": 0, "bias_field": 0, "noise_std": 0}),
                            intensity_channels=[0])
        if cfg.rotate_deg == 0:
            assert torch.equal(geo[:, 1], out[:, 1]) and not torch.allclose(geo[:, 0], out[:, 0])


def test_where_leaves_items_unchanged():
    x = _batch(b=4)
    where = torch.tensor([True, False, True, False])
    torch.manual_seed(1)
    out, (mo,) = augment_batch(x, AugmentConfig.lossless(intensity=0.0), extras=[x[:, 0].clone()], where=where)
    assert torch.equal(out[1], x[1]) and torch.equal(out[3], x[3]) and not torch.equal(out[0], x[0])
    assert torch.equal(mo, out[:, 0])  # the extra follows its item, selected or not


def test_determinism_global_rng_and_generator():
    x = _batch()
    cfg = AugmentConfig(rot90="all", shift=2, gamma=0.3, bias_field=0.1, noise_std=0.05)
    torch.manual_seed(7)
    a = augment_batch(x, cfg)
    torch.manual_seed(7)
    b = augment_batch(x, cfg)
    assert torch.equal(a, b)
    torch.manual_seed(8)
    assert not torch.equal(augment_batch(x, cfg), a)
    c = augment_batch(x, cfg, generator=torch.Generator().manual_seed(7))
    d = augment_batch(x, cfg, generator=torch.Generator().manual_seed(7))
    assert torch.equal(c, d)


def test_each_flip_happens_about_half_the_time():
    n_items = 4000
    x = torch.zeros(n_items, 1, 2, 2, 2)
    x[:, 0, 0, 0, 0] = 1.0  # a marker voxel: where it lands tells which axes were flipped
    torch.manual_seed(0)
    out = augment_batch(x, AugmentConfig(**GEOMETRY_ONLY))
    where = out[:, 0].flatten(1).argmax(1)
    flipped = torch.stack([(where // 4) % 2, (where // 2) % 2, where % 2], 1).float()
    rate = flipped.mean(0)
    assert torch.all((rate - 0.5).abs() < 0.03), rate  # 3 sd of a binomial(4000, 1/2) is 0.024
    assert abs(float((flipped[:, 0] * flipped[:, 1]).mean()) - 0.25) < 0.03  # independent axes
    torch.manual_seed(0)
    only_w = augment_batch(x, AugmentConfig(flip_axes=(2,), **GEOMETRY_ONLY))
    w = only_w[:, 0].flatten(1).argmax(1)
    assert torch.all(w < 2) and abs(float((w == 1).float().mean()) - 0.5) < 0.03


def test_intensity_ranges():
    x = torch.full((500, 1, 4, 4, 4), 0.5)
    torch.manual_seed(0)
    out = augment_batch(x, AugmentConfig(rotate_deg=0, gain=0.2, offset=0.0))
    ratio = out.flatten(1)[:, 0] / 0.5
    assert ratio.min() >= 0.8 and ratio.max() <= 1.2 and ratio.std() > 0.05
    torch.manual_seed(0)
    out = augment_batch(x, AugmentConfig(rotate_deg=0, gain=0.0, offset=0.1, flip_prob=0))
    assert (out - 0.5).abs().max() <= 0.1 and torch.all(out.flatten(1).std(1) == 0)
    ramp = torch.linspace(0, 1, 64).view(1, 1, 4, 4, 4).expand(50, 1, 4, 4, 4)
    torch.manual_seed(0)
    g = augment_batch(ramp, AugmentConfig(rotate_deg=0, gain=0, offset=0, flip_prob=0, gamma=0.5))
    assert torch.allclose(g.amin((1, 2, 3, 4)), torch.zeros(50)) and torch.allclose(g.amax((1, 2, 3, 4)), torch.ones(50))
    torch.manual_seed(0)
    bias = augment_batch(ramp + 1, AugmentConfig(rotate_deg=0, gain=0, offset=0, flip_prob=0, bias_field=0.1))
    log_factor = (bias / (ramp + 1)).log()
    assert log_factor.abs().max() <= 0.1 * 20 and log_factor.flatten(1).std(1).min() > 0.01  # 20 terms of degree <= 3
    torch.manual_seed(0)
    noisy = augment_batch(x, AugmentConfig(rotate_deg=0, gain=0, offset=0, flip_prob=0, noise_std=0.1))
    assert 0 < float((noisy - 0.5).std()) < 0.1


def test_disabled_and_invalid():
    x = _batch()
    assert augment_batch(x, AugmentConfig.off()) is x
    m = torch.zeros(6, 8, 8, 8)
    out, (mo,) = augment_batch(x, AugmentConfig.off(), extras=[m])
    assert out is x and mo is m
    with pytest.raises(ValueError):
        augment_batch(x, AugmentConfig(rot90="diagonal"))
    with pytest.raises(ValueError):
        augment_batch(x, AugmentConfig(shift_mode="mirror"))
    with pytest.raises(ValueError):
        augment_batch(x, AugmentConfig(), extras=[torch.zeros(6, 7, 8, 8)])
    with pytest.raises(ValueError):
        augment_batch(x[0], AugmentConfig())


def test_flip_variants_distinct_self_inverse():
    assert len(FLIPS) == 8 and len(set(FLIPS)) == 8 and FLIPS[0] == ()
    x = torch.rand(2, 1, 3, 4, 5)
    assert flip_variant(x, 0, 2) is x
    seen = set()
    for v in range(8):
        y = flip_variant(x, v, 2)
        assert torch.equal(flip_variant(y, v, 2), x)
        assert torch.equal(flip_variant(x[0], v, 1), y[0]) and torch.equal(flip_variant(x, v), y)  # default: the last 3 axes
        assert np.array_equal(flip_variant(x.numpy(), v, 2), y.numpy())
        seen.add(tuple(y.flatten().tolist()))
    assert len(seen) == 8


def test_orient_matches_numpy_and_torch():
    a = np.random.default_rng(0).random((4, 6, 6))
    for flips in ((), (0,), (1, 2), (0, 1, 2)):
        for k in range(4):
            expected = np.rot90(np.flip(a, flips) if flips else a, k, axes=(1, 2))
            assert np.array_equal(orient(a, flips, k), expected)
            assert np.array_equal(orient(torch.from_numpy(a), flips, k).numpy(), expected)
            assert np.array_equal(orient(torch.from_numpy(a)[None, None], flips, k, spatial_start=2)[0, 0].numpy(), expected)


def _legacy_classifier_augment(x, real, rotate_deg=10.0, intensity=0.1):
    """The classifier augmentation this module replaced (neocls/data.py ``augment``), kept as the reference."""
    import math

    import torch.nn.functional as F

    b = x.shape[0]
    flips = torch.rand(b, 3) < 0.5
    angles = (torch.rand(b, 3) * 2 - 1) * math.radians(rotate_deg)
    gain = 1 + (torch.rand(b) * 2 - 1) * intensity
    offset = (torch.rand(b) * 2 - 1) * intensity
    out = x
    for axis in range(3):
        out = torch.where(flips[:, axis, None, None, None, None], out.flip(2 + axis), out)
    if rotate_deg > 0:
        from neonet_core.augment.geometry import rotation_matrices  # the same Rz @ Ry @ Rx as before

        theta = torch.cat([rotation_matrices(angles), torch.zeros(b, 3, 1)], 2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * gain.view(b, 1, 1, 1, 1) + offset.view(b, 1, 1, 1, 1)
    return torch.where(real.view(b, 1, 1, 1, 1), out, x)


def test_default_config_reproduces_the_legacy_classifier_augmentation():
    x = _batch(b=4)
    real = torch.tensor([True, False, True, True])
    torch.manual_seed(1)
    old = _legacy_classifier_augment(x, real)
    torch.manual_seed(1)
    assert torch.equal(augment_batch(x, AugmentConfig(), where=real), old)


def test_flips_only_reproduces_the_legacy_neogen_flips():
    x = _batch(b=8)
    torch.manual_seed(2)
    coins = torch.rand(8, 3) < 0.5  # neogen/stages.py random_flips drew exactly this
    old = torch.stack([torch.flip(item, [a + 1 for a in range(3) if c[a]]) for item, c in zip(x, coins.tolist())])
    torch.manual_seed(2)
    assert torch.equal(augment_batch(x, AugmentConfig(**GEOMETRY_ONLY)), old)


def test_reproduces_the_legacy_neoseg_crop_augmentation():
    """neoseg/data.py random_crop drew a coin per axis (flip), then gain and offset, per crop."""
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((12, 12, 12)).astype(np.float32))[None]
    labels = torch.from_numpy((rng.random((12, 12, 12)) > 0.7).astype(np.int64))[None]
    for seed in range(4):
        torch.manual_seed(seed)
        dims = [d + 1 for d in range(3) if float(torch.rand(())) < 0.5]
        old_x, old_y = (torch.flip(image, dims), torch.flip(labels, dims)) if dims else (image, labels)
        gain = 1.0 + 0.1 * (2 * torch.rand(()) - 1)
        offset = 0.1 * (2 * torch.rand(()) - 1)
        old_x = old_x * gain + offset
        torch.manual_seed(seed)
        x, (y,) = augment_batch(image[None], AugmentConfig(rotate_deg=0, gain=0.1, offset=0.1), extras=[labels[None]])
        assert torch.equal(x[0], old_x) and torch.equal(y[0], old_y)


def test_fast_path_equals_the_per_item_operations():
    """augment_batch folds each item's geometry into one flip, a permuted view and slices; it must
    equal the plain flip / rot90 / shift operations (apply_exact_geometry), for any shape and dtype."""
    x = torch.rand(12, 2, 6, 6, 6)
    for cfg in (AugmentConfig(rot90="all", shift=2, **GEOMETRY_ONLY), AugmentConfig(rot90="inplane", shift=3, shift_mode="edge", **GEOMETRY_ONLY)):
        torch.manual_seed(4)
        p = sample_params(12, x.shape[2:], cfg)
        torch.manual_seed(4)
        out = augment_batch(x, cfg)
        assert torch.equal(out, torch.stack([apply_exact_geometry(x[i], p, i) for i in range(12)]))
    ints = torch.randint(0, 9, (12, 4, 6, 6))
    for mode in ("edge", "roll"):
        cfg = AugmentConfig(rot90="inplane", shift=7, shift_mode=mode, **GEOMETRY_ONLY)  # shifts beyond the side
        torch.manual_seed(5)
        p = sample_params(12, ints.shape[1:], cfg)
        for extra in (ints, ints > 4, ints.to(torch.uint8)):  # bool: no replicate-pad kernel
            torch.manual_seed(5)
            _, (out,) = augment_batch(torch.zeros(12, 1, 4, 6, 6), cfg, extras=[extra])
            assert out.dtype == extra.dtype and torch.equal(out, torch.stack([apply_exact_geometry(extra[i], p, i) for i in range(12)]))
    x = torch.rand(2, 1, 4, 4, 4)
    assert augment_batch(x, AugmentConfig(flip_prob=0.0, **GEOMETRY_ONLY)) is x


def test_the_input_is_never_modified():
    x = _batch(b=4, c=2)
    x0 = x.clone()
    for cfg in (AugmentConfig(flip_prob=0.0, rotate_deg=0.0, gamma=0.3, bias_field=0.1, noise_std=0.1),
                AugmentConfig.lossless(), AugmentConfig(), AugmentConfig(flip_prob=0.0, rotate_deg=0.0)):
        for channels in (None, [0]):
            out = augment_batch(x, cfg, intensity_channels=channels)
            assert torch.equal(x, x0) and out.data_ptr() != x.data_ptr()
