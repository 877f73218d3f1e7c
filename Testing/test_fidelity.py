"""Detectability and class fidelity of synthetic patches, and the real-vs-synthetic gallery, on fixed inputs."""

import struct
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from neonet_core.neogen.fidelity import (
    Probe,
    class_fidelity,
    detectability,
    feature_names,
    high_frequency_energy,
    patch_features,
    summary_lines,
)
from neonet_core.neogen.gallery import gallery_pixel_size, write_gallery

SIZE = 16


def textures(n: int, seed: int, labels=None, size: int = SIZE):
    """Real-like patches ``(n, size^3)`` and tumour masks: random boxes with sharp edges on a flat
    background, a central spherical tumour (0.6), mild noise. Where ``labels[m]`` is 1 (PNI+), two
    tumour-intensity strands leave the tumour towards the patch edge (the class signal)."""
    rng = np.random.default_rng(seed)
    k, j, i = np.mgrid[:size, :size, :size]
    c = size // 2
    images, masks = np.zeros((n, size, size, size)), np.zeros((n, size, size, size), np.uint8)
    for m in range(n):
        x = np.full((size,) * 3, rng.uniform(0.3, 0.4))
        for _ in range(int(rng.integers(3, 6))):
            lo = rng.integers(0, size - 3, 3)
            hi = lo + rng.integers(2, size // 2, 3)
            x[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = rng.choice([rng.uniform(0.05, 0.4), rng.uniform(0.8, 0.95)])
        r = rng.uniform(2.5, 3.5)
        tumour = (k - c) ** 2 + (j - c) ** 2 + (i - c) ** 2 <= r * r
        x[tumour] = 0.6
        if labels is not None and labels[m]:
            for axis in rng.choice(3, 2, replace=False):
                near = [np.abs(a - c) <= 1 for n_, a in enumerate((k, j, i)) if n_ != axis]
                x[near[0] & near[1] & ((k, j, i)[axis] >= c) & ~tumour] = 0.6
        images[m] = x + 0.02 * rng.standard_normal(x.shape)
        masks[m] = tumour
    return images, masks


def blurred(images, sigma=1.0):
    """What an autoencoder round trip does to fine detail: a Gaussian blur of each patch."""
    return np.stack([ndimage.gaussian_filter(x, sigma) for x in images])


def balanced(n_neg, n_pos):
    return np.r_[np.zeros(n_neg, int), np.ones(n_pos, int)]


# ----------------------------------------------------------------------------- detectability

def test_high_frequency_energy_drops_when_blurred():
    x, _ = textures(4, 0)
    for patch, smooth in zip(x, blurred(x)):
        assert high_frequency_energy(smooth) < 0.3 * high_frequency_energy(patch)
    assert high_frequency_energy(np.full((8, 8, 8), 3.0)) == 0.0


def test_patch_features_shape_and_names():
    x, m = textures(3, 1)
    assert patch_features(x).shape == (3, len(feature_names(False)))
    f = patch_features(x, m)
    assert f.shape == (3, len(feature_names(True))) and np.isfinite(f).all()
    empty = patch_features(x[:1], np.zeros_like(m[:1]))  # no tumour: mask features are NaN, the rest finite
    assert np.isnan(empty[0, len(feature_names(False)) :]).all() and np.isfinite(empty[0, : len(feature_names(False))]).all()
    with pytest.raises(ValueError, match="shape"):
        patch_features(x[0])
    with pytest.raises(ValueError, match="differ"):
        patch_features(x, m[:2])


def test_sharp_against_blurred_is_detected():
    real, _ = textures(30, 0)
    decoded = blurred(textures(30, 1)[0])  # other patches, blurred like an AE round trip
    d = detectability(real, decoded, seed=0)
    assert d["auc"] > 0.95 and d["meets_target"] is False and d["reason"] is None
    assert d["n_real"] == 30 and d["n_synthetic"] == 30 and d["n_folds"] == 5 and len(d["fold_aucs"]) == 5
    assert 0.0 <= d["auc_sd"] < 0.1 and d["auc_ci"][0] > 0.9
    # the separating features are high-frequency ones, lower in the blurred patches
    names = {t["name"]: t["auc"] for t in d["top_features"]}
    assert "log_hf_energy" in names and names["log_hf_energy"] < 0.05


def test_same_distribution_is_not_detected():
    # 60 of each: over draws 10..19 vs 50..59 every AUC lay in 0.38..0.68 (CV AUC under the null scatters ~0.07)
    a, am = textures(60, 10)
    b, bm = textures(60, 50)
    d = detectability(a, b, seed=0)
    assert 0.3 <= d["auc"] <= 0.7 and d["meets_target"] is True
    dm = detectability(a, b, seed=0, real_masks=am, synthetic_masks=bm)
    assert 0.3 <= dm["auc"] <= 0.7 and dm["n_features"] == len(feature_names(True))


def test_detectability_is_deterministic_for_a_seed():
    a, b = textures(12, 3)[0], blurred(textures(12, 4)[0], 0.6)
    assert detectability(a, b, seed=5)["auc"] == detectability(a, b, seed=5)["auc"]


def test_detectability_tiny_sets():
    a, _ = textures(3, 5)
    one = detectability(a, a[:1])
    assert np.isnan(one["auc"]) and "at least 2" in one["reason"] and one["meets_target"] is None
    assert np.isnan(detectability(a[:0], a)["auc"])
    two = detectability(a[:2], blurred(a[1:3]))  # 2 of each: 2 folds, a number
    assert two["n_folds"] == 2 and np.isfinite(two["auc"])
    with pytest.raises(ValueError, match="both"):
        detectability(a, a, real_masks=np.zeros_like(a))
    with pytest.raises(ValueError, match="NaN"):
        detectability(np.full((2, 4, 4, 4), np.nan), a)


# ----------------------------------------------------------------------------- class fidelity

def test_faithful_synthetic_patches_keep_their_class():
    yr, ys = balanced(20, 20), balanced(15, 15)
    real, real_m = textures(40, 100, yr)
    syn, syn_m = textures(30, 200, ys)  # same class-dependent generator, other draws
    f = class_fidelity(real, yr, syn, ys, seed=0, real_masks=real_m, synthetic_masks=syn_m)
    assert f["auc"] > 0.8 and f["meets_target"] is True and f["reason"] is None and f["note"] is None
    assert f["real_cv_auc"] > 0.8  # the reference: the feature model sees the class on real patches
    assert f["synthetic_mean_p"][1] > f["synthetic_mean_p"][0]
    assert (f["n_real_pos"], f["n_real_neg"], f["n_synthetic_pos"], f["n_synthetic_neg"]) == (20, 20, 15, 15)
    assert f["top_features"][0]["name"] == "shell_tumour_like_fraction"


def test_uninformative_synthetic_labels_score_chance():
    yr = balanced(20, 20)
    real, real_m = textures(40, 100, yr)
    ys = balanced(30, 30)
    syn, syn_m = textures(60, 200, ys)
    shuffled = np.random.default_rng(0).permutation(ys)
    f = class_fidelity(real, yr, syn, shuffled, seed=0, real_masks=real_m, synthetic_masks=syn_m)
    assert abs(f["auc"] - 0.5) < 0.2 and f["meets_target"] is False
    # a generator that ignores the label: every synthetic patch drawn as PNI-, half called PNI+
    flat, flat_m = textures(60, 300, np.zeros(60, int))
    g = class_fidelity(real, yr, flat, ys, seed=0, real_masks=real_m, synthetic_masks=flat_m)
    assert abs(g["auc"] - 0.5) < 0.2


def test_fidelity_reference_flags_a_blind_feature_model():
    yr = balanced(20, 20)
    real, _ = textures(40, 7)  # labels unrelated to the patches
    f = class_fidelity(real, yr, real[:4], [0, 0, 1, 1], seed=0)
    assert f["real_cv_auc"] < 0.7 and f["note"] is not None and "barely" in f["note"]


def test_fidelity_tiny_and_one_sided_sets():
    x, _ = textures(6, 8)
    few = class_fidelity(x[:3], [0, 0, 1], x[3:], [0, 1, 1])
    assert np.isnan(few["auc"]) and "2 real patches of each class" in few["reason"]
    one_class = class_fidelity(x[:4], [0, 0, 1, 1], x[4:], [1, 1])
    assert np.isnan(one_class["auc"]) and "one class" in one_class["reason"]
    assert np.isfinite(one_class["real_cv_auc"]) and one_class["n_folds"] == 2
    assert np.isnan(class_fidelity(x[:4], [0, 0, 1, 1], x[:0], [])["auc"])
    with pytest.raises(ValueError, match="0 or 1"):
        class_fidelity(x[:4], [0, 0, 2, 1], x[4:], [0, 1])
    with pytest.raises(ValueError, match="labels for"):
        class_fidelity(x[:4], [0, 1], x[4:], [0, 1])


def test_fidelity_with_a_given_featurizer():
    yr, ys = balanced(10, 10), balanced(6, 6)
    rng = np.random.default_rng(3)
    real = rng.normal(0, 1, (20, 4, 4, 4)) + 2.0 * yr[:, None, None, None]
    syn = rng.normal(0, 1, (12, 4, 4, 4)) + 2.0 * ys[:, None, None, None]
    mean_only = lambda images, masks: images.mean(axis=(1, 2, 3))[:, None]  # noqa: E731
    f = class_fidelity(real, yr, syn, ys, probe=Probe(featurize=mean_only))
    assert f["auc"] == 1.0 and f["n_features"] == 1 and "given" in f["method"]
    lines = summary_lines(detectability(real, syn, probe=Probe(featurize=mean_only)), f)
    assert len(lines) == 4 and "detectability" in lines[2] and "class fidelity" in lines[3]


# ----------------------------------------------------------------------------- gallery

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_gallery_png(tmp_path):
    yr, ys = balanced(3, 3), balanced(2, 4)
    real, real_m = textures(6, 0, yr)
    syn, syn_m = textures(6, 1, ys)
    out = write_gallery(tmp_path / "gallery.png", real, real_m, syn, syn_m, yr, ys, n=5)
    assert out == tmp_path / "gallery.png"
    assert _png_size(out) == gallery_pixel_size(5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.png"]
    # fewer patches than n: one row per available pair; no masks: no outlines, still a PNG
    small = write_gallery(tmp_path / "small.png", real[:2], None, syn[:1], None, [0, 1], [1], n=8)
    assert _png_size(small) == gallery_pixel_size(2)


def test_gallery_leaves_nothing_partial_on_failure(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    real, real_m = textures(2, 0)
    target = tmp_path / "gallery.png"
    target.write_bytes(b"previous")

    def broken(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        write_gallery(target, real, real_m, real, real_m, [0, 1], [0, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.png"] and target.read_bytes() == b"previous"
    with pytest.raises(ValueError, match="labels for"):
        write_gallery(tmp_path / "bad.png", real, real_m, real, real_m, [0], [0, 1])
    assert not (tmp_path / "bad.png").exists()
