"""A tiny learnable cohort on disk for the NeoGen tests (real NIfTI files through SimpleITK).

Each case: a 40^3 volume at 2 mm (liver ellipsoid, a vessel, a dark spherical tumour; PNI+ cases
have a bright rim around the tumour), its tumour mask and its anatomy labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neonet_core.io import write_volume
from neonet_core.manifest import Case, write_manifest
from neonet_core.volume import Volume


def make_case(rng: np.random.Generator, label: int, n: int = 40):
    k, j, i = np.mgrid[:n, :n, :n].astype(np.float32)
    c = (n - 1) / 2
    liver = ((k - c) / 16) ** 2 + ((j - c) / 17) ** 2 + ((i - c) / 15) ** 2 <= 1
    vessel = ((j - c - 6) ** 2 + (i - c + 7) ** 2 <= 4) & liver
    centre = c + rng.uniform(-3, 3, 3)
    radius = rng.uniform(3.0, 5.0)
    dist = np.sqrt((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2)
    tumour = dist <= radius
    image = 0.05 + 0.02 * rng.standard_normal((n, n, n))
    image[liver] += 0.55
    image[vessel] += 0.3
    image[tumour] = 0.25 + 0.02 * rng.standard_normal(int(tumour.sum()))
    if label == 1:
        image[(dist > radius) & (dist <= radius + 1.5)] = 0.95
    anatomy = np.zeros((n, n, n), np.uint8)
    anatomy[liver] = 1
    anatomy[vessel] = 3
    anatomy[tumour] = 4
    return image.astype(np.float32), tumour.astype(np.uint8), anatomy


def make_cohort(folder: str | Path, labels=(0, 0, 0, 0, 0, 1, 1, 1), seed: int = 0) -> Path:
    """Write the cases and ``manifest.csv`` into ``folder``; returns the manifest path."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    cases = []
    for n, label in enumerate(labels):
        image, tumour, anatomy = make_case(rng, label)
        origin = tuple(rng.uniform(-50, 50, 3))
        paths = [folder / f"case{n:02d}_{kind}.nii.gz" for kind in ("image", "tumour", "anatomy")]
        for array, path in zip((image, tumour, anatomy), paths):
            write_volume(Volume(array, (2.0, 2.0, 2.0), origin), path)
        cases.append(Case(f"case{n:02d}", paths[0], paths[1], paths[2], int(label), f"p{n:02d}"))
    return write_manifest(cases, folder / "manifest.csv")


# --- tests: NeoGen data, masks and balancing arithmetic (no network training) ---------------------
import pytest  # noqa: E402
import torch  # noqa: E402

from neonet_core.errors import NeoNetError  # noqa: E402
from neonet_core.manifest import read_manifest  # noqa: E402
from neonet_core.neogen.controlnet import MASK_CHANNELS, mask_channels  # noqa: E402
from neonet_core.augment import FLIPS, flip_variant as flip  # noqa: E402
from neonet_core.patches import extract_patches  # noqa: E402
from neonet_core.neogen.generate import balance_counts, plan_synthetic, transform_mask  # noqa: E402


def test_patches_from_real_files_are_normalised_and_centred(tmp_path):
    from neonet_core.config import get_preset

    cases = read_manifest(make_cohort(tmp_path, labels=(0, 1)))
    patches = extract_patches(cases, get_preset("tiny"))
    assert patches.case_ids == ["case00", "case01"] and patches.labels.tolist() == [0, 1]
    for image, tumour, anatomy in zip(patches.images, patches.tumour, patches.anatomy):
        assert image.shape == (32, 32, 32) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert tumour.sum() > 20
        centre = np.argwhere(tumour).mean(0)
        assert np.all(np.abs(centre - 15.5) <= 1.0)  # the TLCR crop centres the tumour
        assert set(np.unique(anatomy)) <= {0, 1, 3, 4}


def test_mask_channels_one_hot():
    tumour = np.zeros((4, 4, 4), np.uint8)
    tumour[1, 1, 1] = 1
    anatomy = np.zeros((4, 4, 4), np.uint8)
    anatomy[0] = 1
    anatomy[2, 2, 2] = 4
    anatomy[3, 3, 3] = 3
    anatomy[3, 0, 0] = 2
    cond = mask_channels(tumour, anatomy)
    assert cond.shape == (len(MASK_CHANNELS), 4, 4, 4) and MASK_CHANNELS == ("tumour", "liver", "bile_duct", "vessel")
    assert cond[0].sum() == 2 and cond[0, 1, 1, 1] == 1 and cond[0, 2, 2, 2] == 1
    assert cond[1].sum() == 16 and cond[2, 3, 0, 0] == 1 and cond[3, 3, 3, 3] == 1 and cond[3].sum() == 1
    assert mask_channels(tumour)[1:].sum() == 0


def test_flip_variants_cover_all_axis_subsets():
    assert len(FLIPS) == 8 and len(set(FLIPS)) == 8
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert torch.equal(flip(x, 0, 1), x)
    for v in range(8):
        assert torch.equal(flip(flip(x, v, 1), v, 1), x)


def test_balance_counts():
    assert balance_counts([0, 0, 0, 0, 0, 1, 1, 1]) == (1, 2)
    assert balance_counts([1, 1, 1, 1, 0]) == (0, 3)
    assert balance_counts([0, 1, 0, 1]) == (1, 0)
    with pytest.raises(NeoNetError, match="both classes"):
        balance_counts([0, 0, 0])


def test_plan_uses_sources_evenly_and_is_seeded():
    from neonet_core.manifest import Case

    sources = [Case(f"c{i}", None, None, None, 1, f"p{i}") for i in range(3)]
    plans = plan_synthetic(sources, 7, seed=5)
    used = [p.source.case_id for p in plans]
    assert len(plans) == 7 and sorted(used.count(c) for c in {"c0", "c1", "c2"}) == [2, 2, 3]
    again = plan_synthetic(sources, 7, seed=5)
    assert [(p.source.case_id, p.flips, p.rot90) for p in plans] == [(p.source.case_id, p.flips, p.rot90) for p in again]
    other = plan_synthetic(sources, 7, seed=6)
    assert [(p.source.case_id, p.flips, p.rot90) for p in plans] != [(p.source.case_id, p.flips, p.rot90) for p in other]


def test_transform_mask_keeps_voxel_count():
    rng = np.random.default_rng(0)
    mask = (rng.random((6, 6, 6)) > 0.7).astype(np.uint8)
    out = transform_mask(mask, (0, 2), 3)
    assert out.shape == mask.shape and out.sum() == mask.sum() and not np.array_equal(out, mask)
    assert np.array_equal(transform_mask(mask, (), 0), mask)
