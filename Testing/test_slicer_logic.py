"""NeoNetSlicer's Logic on a real MRML scene (slicer-core wheel): NeoSeg localisation in process and
through the background ``neonet segment`` job, on an oblique volume; the user's nodes stay unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from slicer_scene import mrml, node_matrix, oblique_direction, slicer  # noqa: F401  (fixture)

from neonet_core.io import write_volume
from neonet_core.tlcr import tumour_roi
from neonet_core.volume import Volume, lps_to_ras

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import volume_from_node
from NeoNetSlicerLib.logic import NeoNetLogic


def ellipsoid_case(rng, shape=(16, 40, 40), spacing=(1.5, 1.5, 3.0), direction=np.eye(3), origin=(-10.0, 20.0, 5.0)):
    """(image int16 Volume, mask uint8 Volume): a bright ellipsoid (radius 6-9 mm) in noise."""
    k, j, i = np.indices(shape, dtype=np.float64)
    pts = np.stack([i * spacing[0], j * spacing[1], k * spacing[2]], axis=-1)
    extent = np.array([shape[2] * spacing[0], shape[1] * spacing[1], shape[0] * spacing[2]])
    centre = rng.uniform(0.35, 0.65, 3) * extent
    mask = (np.linalg.norm(pts - centre, axis=-1) < rng.uniform(6.0, 9.0)).astype(np.uint8)
    image = (200 + 30 * rng.standard_normal(shape) + 300.0 * mask).astype(np.int16)
    return Volume(image, spacing, origin, direction), Volume(mask, spacing, origin, direction)


@pytest.fixture(scope="session")
def seg_bundle(tmp_path_factory):
    """A NeoSeg bundle trained (tiny UNet, 10 epochs, about 15 s on 2 CPU cores) on 4 ellipsoid cases."""
    from neonet_core.config import get_preset
    from neonet_core.neoseg import train_seg
    from neonet_core.progress import set_default_mode

    root = tmp_path_factory.mktemp("seg_bundle")
    rng = np.random.default_rng(0)
    rows = ["case_id,image,tumor_mask"]
    for c in range(4):
        image, mask = ellipsoid_case(rng)
        write_volume(image, root / f"case{c}.nii.gz")
        write_volume(mask, root / f"case{c}_tumour.nii.gz")
        rows.append(f"case{c},case{c}.nii.gz,case{c}_tumour.nii.gz")
    (root / "cohort.csv").write_text("\n".join(rows) + "\n")
    cfg = get_preset("tiny")
    cfg.seg.channels, cfg.seg.roi_size = (4, 8, 16), (16, 32, 32)
    cfg.seg.train.epochs, cfg.seg.train.batch_size, cfg.seg.train.lr, cfg.seg.train.device = 10, 1, 1e-2, "cpu"
    set_default_mode("none")
    try:
        return train_seg(root / "cohort.csv", cfg, root / "bundle", val_fraction=0.25)
    finally:
        set_default_mode("bar")


@pytest.fixture
def oblique_case(mrml, tmp_path):
    """An oblique ellipsoid case loaded through Slicer's volumes logic: (volume node, truth mask Volume)."""
    image, mask = ellipsoid_case(np.random.default_rng(7), direction=oblique_direction(), origin=(30.0, -12.0, 8.0))
    node = mrml.load_volume(write_volume(image, tmp_path / "oblique.nrrd"), "oblique")
    return node, mask


def snapshot(node):
    return slicer.util.arrayFromVolume(node).copy(), node_matrix(node), node.GetName(), node.GetParentTransformNode()


def assert_unchanged(node, before):
    array, matrix, name, transform = before
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), array)
    np.testing.assert_array_equal(node_matrix(node), matrix)
    assert node.GetName() == name and node.GetParentTransformNode() is transform


def ras_center(roi_node) -> np.ndarray:
    c = [0.0, 0.0, 0.0]
    roi_node.GetCenter(c)
    return np.asarray(c)


@pytest.mark.slow  # trains a tiny NeoSeg (about 35 s on 2 busy cores)
def test_localize_on_an_oblique_volume_lands_on_the_tumour(mrml, seg_bundle, oblique_case):
    node, truth = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    tumour_node, roi_node, ml = logic.localize(node, bundle=seg_bundle, device="cpu")
    assert_unchanged(node, before)

    segmentation = tumour_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1 and segmentation.GetNthSegment(0).GetName() == "tumour (NeoSeg)"
    assert tumour_node.GetNodeReference(tumour_node.GetReferenceImageGeometryReferenceRole()) is node
    image = volume_from_node(node)
    found = nodes.mask_from_segmentation(tumour_node, node, image)
    truth_on_node = truth.array  # the file was written from this grid and Slicer kept its voxel order
    dice = 2 * np.sum(found.array * truth_on_node) / (found.array.sum() + truth_on_node.sum())
    assert dice > 0.8
    assert ml == pytest.approx(found.array.sum() * np.prod(image.spacing) / 1000.0, rel=1e-6)

    # the ROI node is NeoSeg's TLCR box, in RAS, within one voxel of the true tumour's box centre
    expected = tumour_roi(image, found, 64.0)
    np.testing.assert_allclose(ras_center(roi_node), lps_to_ras(np.asarray(expected.center)), atol=1e-4)
    true_centre = tumour_roi(image, truth, 64.0).center
    offset_ijk = np.abs(image.physical_to_index(np.asarray(true_centre)) - image.physical_to_index(np.asarray(expected.center)))
    assert np.all(offset_ijk <= 1.0)
    np.testing.assert_allclose(nodes.roi_from_node(roi_node).axes, image.direction, atol=1e-6)  # oblique box

    # a re-run updates the same output nodes
    again = logic.localize(node, bundle=seg_bundle, device="cpu")
    assert again[0] is tumour_node and again[1] is roi_node
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


@pytest.mark.slow
def test_background_localize_job_matches_in_process(mrml, seg_bundle, oblique_case):
    """The panel's path: node -> files -> `neonet segment` subprocess (JSON progress) -> nodes."""
    node, _ = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    in_process = nodes.mask_from_segmentation(logic.localize(node, seg_bundle, "cpu")[0], node, volume_from_node(node))
    events = []
    job = logic.start_localize(node, bundle=seg_bundle, device="cpu")
    workdir = job.workdir
    tumour_node, roi_node, _ = job.wait(events.append)
    assert events[-1] == {"event": "finished", "ok": True, "error": None, "cancelled": False}
    assert job.current_device == "cpu" and not workdir.exists()  # its temporary files are gone
    background = nodes.mask_from_segmentation(tumour_node, node, volume_from_node(node))
    np.testing.assert_array_equal(background.array, in_process.array)
    assert_unchanged(node, before)


def test_background_job_reports_the_cli_error_line(mrml, oblique_case, tmp_path):
    node, _ = oblique_case
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    (tmp_path / "empty").mkdir()
    job = logic.start_localize(node, bundle=tmp_path / "empty", device="cpu")
    from NeoNetSlicerLib.jobs import JobError

    with pytest.raises(JobError, match=r"neonet segment: error: .*empty: not a NeoNet bundle: no bundle.json"):
        job.wait()
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0  # nothing loaded on failure
