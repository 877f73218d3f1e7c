"""NeoSeg: training through the shared engine, bundles, geometry of the output, no-tumour handling, resume.

Real components only: volumes written and read through SimpleITK, real MONAI UNets at tiny sizes,
the real engine and bundle code. Small synthetic cohorts (a bright ellipsoid in noise) keep it fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neonet_core.bundle import load_bundle, zip_bundle
from neonet_core.config import get_preset
from neonet_core.errors import NeoNetError, NoTumourFoundError
from neonet_core.io import read_volume, write_volume
from neonet_core.metrics import dice
from neonet_core.neoseg import Segmenter, load_segmenter, localise, save_seg_network
from neonet_core.neoseg.data import random_crop, working_grid
from neonet_core.splits import hold_out
from neonet_core.workflows.training import train_stage
from neonet_core.neoseg.model import build_seg_net
from neonet_core.neoseg.postprocess import keep_tumour_component, volume_ml
from neonet_core.tlcr import select_tumour_component
from neonet_core.volume import Volume

DATA = Path(__file__).parent / "Data"


def data_file(name: str) -> Path:
    """A real test file shipped in Testing/Data (a missing one fails the test)."""
    path = DATA / name
    assert path.exists(), f"{path}: test data missing"
    return path


def train_seg(manifest, cfg, out, resume=False, val_fraction=0.2):
    """``neonet train seg`` as a library call: the bundle's hold-out, then NeoSeg."""
    cfg.val_fraction = val_fraction
    return train_stage("seg", manifest, cfg, out, "cpu", resume)


def tiny_config(epochs=4):
    cfg = get_preset("tiny")
    cfg.seg.channels = (4, 8, 16)
    cfg.seg.roi_size = (16, 32, 32)
    cfg.seg.train.epochs = epochs
    cfg.seg.train.batch_size = 2
    cfg.seg.train.lr = 5e-3
    cfg.seg.train.checkpoint_every = 2
    cfg.seg.train.log_every = 1
    return cfg


def ellipsoid_case(rng, shape=(16, 40, 40), spacing=(1.5, 1.5, 3.0), direction=np.eye(3)):
    """(image int16 Volume, mask uint8 Volume): a bright ellipsoid (radius 6-9 mm) in noise."""
    k, j, i = np.indices(shape, dtype=np.float64)
    pts = np.stack([i * spacing[0], j * spacing[1], k * spacing[2]], axis=-1)
    extent = np.array([shape[2] * spacing[0], shape[1] * spacing[1], shape[0] * spacing[2]])
    centre = rng.uniform(0.35, 0.65, 3) * extent
    radius = rng.uniform(6.0, 9.0)
    mask = (np.linalg.norm(pts - centre, axis=-1) < radius).astype(np.uint8)
    image = (200 + 30 * rng.standard_normal(shape) + 300.0 * mask).astype(np.int16)
    origin = (-10.0, 20.0, 5.0)
    return Volume(image, spacing, origin, direction), Volume(mask, spacing, origin, direction)


def write_cohort(folder: Path, n=4, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["case_id,image,tumor_mask"]
    for c in range(n):
        image, mask = ellipsoid_case(rng)
        write_volume(image, folder / f"case{c}.nii.gz")
        write_volume(mask, folder / f"case{c}_tumour.nii.gz")
        rows.append(f"case{c},case{c}.nii.gz,case{c}_tumour.nii.gz")
    (folder / "cohort.csv").write_text("\n".join(rows) + "\n")
    return folder / "cohort.csv"


def threshold_net(level=0.6, gain=20.0) -> nn.Module:
    """A real 1x1x1 convolution: tumour logit minus background logit = gain * (intensity - level)."""
    net = nn.Conv3d(1, 2, kernel_size=1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([0.0, gain]).view(2, 1, 1, 1, 1))
        net.bias.copy_(torch.tensor([0.0, -gain * level]))
    return net


def silent_unet(cfg) -> nn.Module:
    """A real tiny UNet whose weights are zero and whose output biases favour background everywhere."""
    net = build_seg_net(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for m in net.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) and m.out_channels == 2 and m.bias is not None:
                m.bias.copy_(torch.tensor([3.0, -3.0]))
    return net


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short NeoSeg training run on a 4-case synthetic cohort: (bundle dir, manifest, config)."""
    root = tmp_path_factory.mktemp("neoseg")
    manifest = write_cohort(root / "cohort")
    cfg = tiny_config(epochs=10)
    cfg.seg.train.batch_size, cfg.seg.train.lr = 1, 1e-2
    bundle = train_seg(manifest, cfg, root / "bundle", val_fraction=0.25)
    return bundle, manifest, cfg


# --- training -----------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_writes_a_bundle(trained):
    bundle_dir, _, _ = trained
    history = [json.loads(line) for line in (bundle_dir / "runs" / "seg" / "history.jsonl").read_text().splitlines()]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 10 * 3  # 3 training cases, batch 1
    assert np.mean(losses[-6:]) < 0.7 * np.mean(losses[:6])
    dices = [h["validation"]["dice"] for h in history if "validation" in h]
    assert len(dices) == 10 and all(0.0 <= d <= 1.0 for d in dices)
    bundle = load_bundle(bundle_dir)
    assert bundle.has("seg")
    assert bundle.info["training"]["seg"]["train_cases"] == 3 and bundle.info["training"]["seg"]["val_cases"] == 1
    assert bundle.info["training"]["seg"]["best_score"] == pytest.approx(max(dices))
    assert bundle.network_config("seg")["classes"] == ["background", "tumour"]


def test_a_second_run_into_the_same_bundle_is_refused(trained, tmp_path):
    bundle_dir, manifest, cfg = trained
    with pytest.raises(NeoNetError, match="already holds a NeoSeg network"):
        train_seg(manifest, cfg, bundle_dir)


def test_resume_continues_from_the_saved_step_with_identical_weights(tmp_path):
    from safetensors.torch import load_file

    manifest = write_cohort(tmp_path / "cohort", n=3, seed=1)
    train_seg(manifest, tiny_config(epochs=4), tmp_path / "full", val_fraction=0.0)
    train_seg(manifest, tiny_config(epochs=2), tmp_path / "part", val_fraction=0.0)  # the run stops at step 2
    saved = torch.load(tmp_path / "part" / "runs" / "seg" / "checkpoint.pt", weights_only=True)["step"]
    assert saved == 2
    train_seg(manifest, tiny_config(epochs=4), tmp_path / "part", resume=True, val_fraction=0.0)
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "runs" / "seg" / "history.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    full = load_file(str(tmp_path / "full" / "runs" / "seg" / "last.safetensors"))
    resumed = load_file(str(tmp_path / "part" / "runs" / "seg" / "last.safetensors"))
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0)


def test_random_crops_come_from_the_torch_rng_only():
    cfg = tiny_config().seg
    image = np.random.default_rng(0).random((20, 40, 40), dtype=np.float32)
    labels = (image > 0.9).astype(np.uint8)
    torch.manual_seed(5)
    a = random_crop(image, labels, cfg, 1)
    torch.manual_seed(5)
    b = random_crop(image, labels, cfg, 1)
    assert a[0].shape == (1, 16, 32, 32) and a[1].dtype == torch.int64
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_split_keeps_patients_together():
    from neonet_core.manifest import Case

    cases = [Case(f"c{i}", Path("x"), Path("y"), None, None, f"p{i // 2}") for i in range(10)]
    train, val = hold_out(cases, 0.2, seed=0).apply(cases)
    assert len(train) + len(val) == 10 and len(val) == 2
    assert {c.patient_id for c in train}.isdisjoint({c.patient_id for c in val})


# --- bundle ---------------------------------------------------------------------------------------
def test_bundle_round_trip_gives_identical_predictions(trained, tmp_path):
    from neonet_core.engine import load_weights

    bundle_dir, manifest, cfg = trained
    image = read_volume(manifest.parent / "case0.nii.gz")
    net = build_seg_net(cfg.seg)
    load_weights(bundle_dir / "runs" / "seg" / "best.safetensors", {"seg": net})
    direct = Segmenter(net, cfg.seg).segment(image, probability=True)
    loaded = load_segmenter(bundle_dir).segment(image, probability=True)
    zipped = load_segmenter(zip_bundle(bundle_dir, tmp_path / "b.zip")).segment(image, probability=True)
    for other in (loaded, zipped):
        np.testing.assert_array_equal(direct.probability.array, other.probability.array)
        np.testing.assert_array_equal(direct.mask.array, other.mask.array)
        assert direct.volume_ml == other.volume_ml


def test_a_trained_segmenter_finds_the_ellipsoid(trained):
    bundle_dir, manifest, _ = trained
    segmenter = load_segmenter(bundle_dir)
    image, truth = read_volume(manifest.parent / "case0.nii.gz"), read_volume(manifest.parent / "case0_tumour.nii.gz")
    result = segmenter.segment(image)
    assert result.found and result.mask.same_grid(image) and result.mask.array.dtype == np.uint8
    assert dice(result.mask.array, truth.array) > 0.5


# --- geometry of the output ----------------------------------------------------------------------
def _bright_tumour(image: Volume, mask: Volume) -> Volume:
    """The real image, dimmed, with the mask's voxels made the brightest: a tumour the threshold net finds."""
    bright = (image.array.astype(np.int32) // 4 + 3000 * (mask.array != 0)).astype(np.int16)
    return image.with_array(bright)


def _centre_mm(mask: Volume) -> np.ndarray:
    return mask.index_to_physical(np.argwhere(mask.array)[:, ::-1].mean(axis=0))


def _rotated(volume: Volume, degrees=25.0) -> Volume:
    """The same voxels with an oblique direction (rotation about the axis (1, 1, 1))."""
    axis = np.ones(3) / np.sqrt(3)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.deg2rad(degrees)
    rot = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
    return Volume(volume.array, volume.spacing, volume.origin, rot @ volume.direction, dict(volume.metadata))


@pytest.mark.parametrize("oblique", [False, True])
def test_mask_lies_on_the_input_grid_of_a_flipped_anisotropic_scan(oblique):
    image = read_volume(data_file("brain_mr_crop.nrrd"))
    truth = read_volume(data_file("brain_mr_tumor_crop.nrrd"))
    assert image.direction[1, 1] == -1.0 and image.spacing[2] > 6.0  # y flipped, 6.5 mm slices
    truth = select_tumour_component(truth, "largest")  # NeoSeg keeps one component; the mask has two
    test_image = _bright_tumour(image, truth)
    if oblique:
        test_image, truth = _rotated(test_image), _rotated(truth)
    cfg = tiny_config().seg
    result = Segmenter(threshold_net(), cfg).segment(test_image, probability=True)
    assert result.mask.same_grid(test_image) and result.probability.same_grid(test_image)
    assert result.found and dice(result.mask.array, truth.array) > 0.8
    assert np.linalg.norm(_centre_mm(result.mask) - _centre_mm(truth)) < 2.0
    true_ml = volume_ml(truth.array, truth.spacing)
    assert result.volume_ml == pytest.approx(true_ml, rel=0.2)


def test_mask_lies_on_the_input_grid_of_an_abdominal_mr():
    image = read_volume(data_file("abdomen_mr.nii.gz"))
    organs = read_volume(data_file("abdomen_mr_organs.nii.gz"))
    liver = select_tumour_component(organs.with_array((organs.array == 5).astype(np.uint8)), "largest")
    # a "tumour": the liver within 20 mm of its centre (the whole liver is refused as an implausible tumour)
    idx = np.argwhere(liver.array > 0)
    near = np.linalg.norm((np.indices(liver.array.shape).T - idx.mean(0)).T * 3.0, axis=0) < 20.0  # 3 mm iso grid
    lesion = liver.with_array((near & (liver.array > 0)).astype(np.uint8))
    bright = image.array.astype(np.int32)
    bright[lesion.array > 0] = min(2 * bright.max(), np.iinfo(np.int16).max)  # the body keeps its intensities (dimming it would make the lesion "the whole body")
    result = Segmenter(threshold_net(), tiny_config().seg).segment(image.with_array(bright.astype(np.int16)))
    assert result.mask.same_grid(image)
    assert dice(result.mask.array, lesion.array) > 0.85
    assert np.linalg.norm(_centre_mm(result.mask) - _centre_mm(lesion)) < 3.0


def test_working_grid_is_isotropic_along_the_image_axes():
    image = _rotated(read_volume(data_file("brain_mr_crop.nrrd")))
    grid = working_grid(image, 3.0)
    assert grid.spacing == (3.0, 3.0, 3.0)
    np.testing.assert_allclose(grid.direction, image.direction)
    # same physical box centre, box at least as large as the image's
    centre = lambda v: v.index_to_physical((np.asarray(v.size_ijk) - 1) / 2.0)  # noqa: E731
    np.testing.assert_allclose(centre(grid), centre(image), atol=1e-6)
    assert np.all(np.asarray(grid.size_ijk) * 3.0 >= np.asarray(image.size_ijk) * np.asarray(image.spacing) - 1e-6)


# --- no tumour, localise --------------------------------------------------------------------------
def test_a_network_that_finds_nothing_says_so(tmp_path):
    cfg = tiny_config()
    rng = np.random.default_rng(3)
    image, mask = ellipsoid_case(rng)
    image = Volume(image.array, image.spacing, image.origin, image.direction, {"path": "/data/patient7.nii.gz"})
    save_seg_network(tmp_path / "bundle", silent_unet(cfg.seg), cfg)
    segmenter = load_segmenter(tmp_path / "bundle")
    result = segmenter.segment(image)
    assert not result.found and result.volume_ml == 0.0
    assert result.mask.same_grid(image) and result.mask.array.sum() == 0
    with pytest.raises(NoTumourFoundError, match=r"NeoSeg found no tumour in /data/patient7\.nii\.gz"):
        localise(image, None, segmenter)
    with pytest.raises(NoTumourFoundError, match="NeoSeg found no tumour"):
        localise(image, None, tmp_path / "bundle")
    user_mask, source = localise(image, mask, segmenter)  # the user's mask always wins
    assert source == "user" and user_mask is mask


def test_localise_uses_neoseg_without_a_user_mask():
    rng = np.random.default_rng(4)
    image, truth = ellipsoid_case(rng)
    mask, source = localise(image, None, Segmenter(threshold_net(), tiny_config().seg))
    assert source == "neoseg" and mask.same_grid(image)
    assert dice(mask.array, truth.array) > 0.7
    with pytest.raises(NeoNetError, match="no tumour mask given and no NeoSeg bundle"):
        localise(image, None, None)


def test_localise_feeds_tlcr():
    from neonet_core.tlcr import tumour_roi

    rng = np.random.default_rng(6)
    image, truth = ellipsoid_case(rng, shape=(20, 48, 48))
    mask, _ = localise(image, None, Segmenter(threshold_net(), tiny_config().seg))
    shift = np.subtract(tumour_roi(image, mask).center, tumour_roi(image, truth).center)
    assert np.linalg.norm(shift) < 5.0


# --- post-processing ------------------------------------------------------------------------------
def test_keeps_the_component_with_the_highest_summed_probability_and_fills_holes():
    prob = np.zeros((12, 12, 12), dtype=np.float32)
    prob[1:4, 1:4, 1:4] = 0.99  # 27 voxels, sum 26.7
    prob[6:11, 6:11, 6:11] = 0.6  # 125 voxels, sum 75 -> kept
    prob[8, 8, 8] = 0.1  # a hole
    kept = keep_tumour_component(prob, 0.5)
    assert kept.sum() == 125 and kept[8, 8, 8] and not kept[2, 2, 2]
    assert keep_tumour_component(prob, 0.5, min_voxels=200) is None
    assert keep_tumour_component(np.zeros((4, 4, 4), np.float32), 0.5) is None
    assert volume_ml(kept, (2.0, 2.0, 2.0)) == pytest.approx(1.0)


# --- anatomy (optional multi-class output) --------------------------------------------------------
def test_anatomy_targets_and_output_on_the_input_grid():
    from neonet_core.neoseg.data import target_labels

    rng = np.random.default_rng(8)
    image, tumour = ellipsoid_case(rng)
    anatomy = image.with_array(np.ones(image.array.shape, np.uint8))  # "liver" everywhere
    anatomy.array[:, :, :3] = 3  # a "vessel" strip
    cfg = tiny_config().seg
    cfg.predict_anatomy = True
    grid = working_grid(image, cfg.spacing_mm)
    labels = target_labels(tumour, anatomy, grid, True)
    assert set(np.unique(labels)) == {1, 3, 4}  # tumour (last class, 4) overrides liver
    net = nn.Conv3d(1, 5, kernel_size=1)  # logits: liver everywhere, tumour where bright
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, 1.0, -5.0, -5.0, -12.0]))
        net.weight[4] = 20.0
    result = Segmenter(net, cfg).segment(image)
    assert result.anatomy.same_grid(image) and set(np.unique(result.anatomy.array)) <= {0, 1, 4}
    assert result.found and dice(result.mask.array, tumour.array) > 0.7
    np.testing.assert_array_equal(result.anatomy.array == 4, result.mask.array == 1)  # label 4 is the tumour mask
