"""NeoNetSlicer's Logic on a real MRML scene (slicer-core wheel), with a bundle trained by the library:
predict on the phantom sample case, an oblique volume and a real MRI; NeoSeg localisation and NeoGen
patches in process and through background CLI jobs; outputs saved by Slicer's storage nodes and read
back; the batch script under plain Python; the user's nodes never change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slicer_scene import mrml, node_matrix, oblique_direction, slicer  # noqa: F401  (fixture)

from neonet_core.io import write_volume
from neonet_core.tlcr import tumour_roi
from neonet_core.volume import Volume, lps_to_ras

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import volume_from_node
from NeoNetSlicerLib.logic import NeoNetLogic


def cli_with(*names):
    """The neonet CLI command, registering subcommands that neonet_core/cli/main.py does not list yet."""
    import sys

    from neonet_core.cli.main import COMMAND_MODULES
    from NeoNetSlicerLib.runner import cli_command

    missing = [n for n in names if n not in COMMAND_MODULES]
    if not missing:
        return cli_command
    code = f"import sys, neonet_core.cli.main as m; m.COMMAND_MODULES += {missing!r}; sys.exit(m.main(sys.argv[1:]))"
    return lambda arguments: [sys.executable, "-c", code, "--progress", "json", *map(str, arguments)]


def ellipsoid_case(rng, shape=(16, 40, 40), spacing=(1.5, 1.5, 3.0), direction=np.eye(3), origin=(-10.0, 20.0, 5.0)):
    """(image int16 Volume, mask uint8 Volume): a bright ellipsoid (radius 6-9 mm) in noise."""
    k, j, i = np.indices(shape, dtype=np.float64)
    pts = np.stack([i * spacing[0], j * spacing[1], k * spacing[2]], axis=-1)
    extent = np.array([shape[2] * spacing[0], shape[1] * spacing[1], shape[0] * spacing[2]])
    centre = rng.uniform(0.35, 0.65, 3) * extent
    mask = (np.linalg.norm(pts - centre, axis=-1) < rng.uniform(6.0, 9.0)).astype(np.uint8)
    image = (200 + 30 * rng.standard_normal(shape) + 300.0 * mask).astype(np.int16)
    return Volume(image, spacing, origin, direction), Volume(mask, spacing, origin, direction)


def tiny_bundle(root: Path) -> Path:
    """A complete tiny bundle made by the library's own training functions (about 60 s on 2 busy cores):
    NeoSeg on 4 ellipsoid cases (10 epochs), then autoencoder, LDM, ControlNet and the default classifier (1 epoch
    each) on a 6-case phantom cohort. Good enough to exercise every path, not to be accurate.
    Also used by bench/bench_slicer_logic.py."""
    from neonet_core.config import get_preset
    from neonet_core.workflows.training import train_cls, train_stage
    from neonet_core.phantom.cohort import generate_cohort
    from neonet_core.progress import set_default_mode

    rng = np.random.default_rng(0)
    rows = ["case_id,image,tumor_mask"]
    for c in range(4):
        image, mask = ellipsoid_case(rng)
        write_volume(image, root / f"case{c}.nii.gz")
        write_volume(mask, root / f"case{c}_tumour.nii.gz")
        rows.append(f"case{c},case{c}.nii.gz,case{c}_tumour.nii.gz")
    (root / "ellipsoids.csv").write_text("\n".join(rows) + "\n")
    cfg = get_preset("tiny")
    cfg.seg.channels, cfg.seg.roi_size = (4, 8, 16), (16, 32, 32)
    cfg.seg.train.epochs, cfg.seg.train.batch_size, cfg.seg.train.lr = 10, 1, 1e-2
    cfg.val_fraction = 0.25
    for section in (cfg.ae, cfg.ldm, cfg.controlnet, cfg.cls):
        section.train.epochs, section.train.batch_size = 1, 2
    set_default_mode("none")
    try:
        out = train_stage("seg", root / "ellipsoids.csv", cfg, root / "bundle", "cpu")
        phantoms = generate_cohort(root / "phantoms", cases=6, positives=3, seed=3, size=(64, 64, 24), spacing=(2.5, 2.5, 4.0))
        for stage in ("ae", "ldm", "controlnet"):
            train_stage(stage, phantoms, cfg, out, "cpu")
        train_cls(phantoms, cfg, out, "cpu", neogen=False)
    finally:
        set_default_mode("bar")
    return out


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """The tiny bundle of :func:`tiny_bundle`, trained once per session on 2 threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return tiny_bundle(tmp_path_factory.mktemp("bundle"))
    finally:
        torch.set_num_threads(threads)


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


@pytest.mark.slow  # the bundle fixture trains every network once (about 60 s)
def test_localize_on_an_oblique_volume_lands_on_the_tumour(mrml, bundle, oblique_case):
    node, truth = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    tumour_node, roi_node, ml = logic.localize(node, bundle=bundle, device="cpu")
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
    again = logic.localize(node, bundle=bundle, device="cpu")
    assert again[0] is tumour_node and again[1] is roi_node
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


@pytest.mark.slow
def test_background_localize_job_matches_in_process(mrml, bundle, oblique_case):
    """The panel's path: node -> files -> `neonet segment` subprocess (JSON progress) -> nodes."""
    node, _ = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    in_process = nodes.mask_from_segmentation(logic.localize(node, bundle, "cpu")[0], node, volume_from_node(node))
    events = []
    job = logic.start_localize(node, bundle=bundle, device="cpu")
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
    assert (job.workdir / "image.nrrd").is_file() and str(job.workdir) in job.log_text()  # kept for inspection
    import shutil

    shutil.rmtree(job.workdir)


# --- predict ---------------------------------------------------------------------------------------
def sample_files():
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, sample_data_dir

    names = list(SAMPLE_FILES)
    return sample_data_dir() / names[0], sample_data_dir() / names[1]


def segmentation_snapshot(segmentation_node, volume_node):
    image = volume_from_node(volume_node)
    seg = segmentation_node.GetSegmentation()
    names = [seg.GetNthSegment(n).GetName() for n in range(seg.GetNumberOfSegments())]
    return names, nodes.mask_from_segmentation(segmentation_node, volume_node, image).array


def voxels_inside_roi(roi_node, volume_node, array: np.ndarray) -> bool:
    """True when every nonzero voxel of ``array`` (on ``volume_node``'s grid) lies in the ROI box (RAS)."""
    from NeoNetSlicerLib.geometry import vtk_to_numpy_matrix

    kji = np.argwhere(array > 0)
    ras = (node_matrix(volume_node) @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]
    to_box = np.linalg.inv(vtk_to_numpy_matrix(roi_node.GetObjectToNodeMatrix()))
    local = (to_box @ np.c_[ras, np.ones(len(ras))].T).T[:, :3]
    half_voxel = 0.5 * np.linalg.norm(volume_from_node(volume_node).spacing)
    return bool(np.all(np.abs(local) <= np.asarray(roi_node.GetSize()) / 2 + half_voxel))


def check_prediction_geometry(out, volume_node, truth: Volume):
    """ROI node and attention map land on the tumour (RAS, within one voxel) and share the input grid."""
    image = volume_from_node(volume_node)
    np.testing.assert_allclose(node_matrix(out.attentionNode), node_matrix(volume_node), atol=1e-6)
    attention = slicer.util.arrayFromVolume(out.attentionNode)
    assert attention.shape == image.array.shape and attention.dtype == np.float32
    assert 0.0 <= attention.min() and attention.max() <= 1.0 + 1e-6 and attention.max() > 0
    assert voxels_inside_roi(out.roiNode, volume_node, attention)
    true_centre = np.asarray(tumour_roi(image, truth, 64.0).center)  # LPS
    roi_centre_lps = lps_to_ras(ras_center(out.roiNode))
    assert np.all(np.abs(image.physical_to_index(roi_centre_lps) - image.physical_to_index(true_centre)) <= 1.0)
    np.testing.assert_allclose(nodes.roi_from_node(out.roiNode).axes, image.direction, atol=1e-6)


@pytest.mark.slow
def test_predict_phantom_sample_with_user_segmentation_saves_and_reads_back(mrml, bundle, tmp_path):
    from neonet_core.io import read_mask_on_image, read_volume
    from neonet_core.predict import predict_case
    from NeoNetSlicerLib.scene import load_segmentation, load_volume

    image_file, seg_file = sample_files()
    volume = load_volume(context_of(mrml), image_file)
    user_seg = load_segmentation(context_of(mrml), seg_file)
    before, seg_before = snapshot(volume), segmentation_snapshot(user_seg, volume)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    out = logic.predict(volume, user_seg, bundle=bundle, device="cpu")
    assert_unchanged(volume, before)
    seg_after = segmentation_snapshot(user_seg, volume)
    assert seg_after[0] == seg_before[0] == ["tumour"] and np.array_equal(seg_after[1], seg_before[1])

    # the numbers: the library on the same files gives the same prediction
    image = read_volume(image_file)
    reference = predict_case(image, read_mask_on_image(seg_file, image), bundle, device="cpu")
    assert out.probability == pytest.approx(reference.probability, abs=1e-4)
    assert out.uncertainty == pytest.approx(reference.uncertainty, abs=1e-4)
    assert out.threshold == reference.threshold and out.label == reference.class_name and out.tumour_source == "user"
    assert out.bundle_name == "bundle" and out.bundle_version
    assert {"mrml_in", "load", "predict_crop", "predict_classify", "predict_attention", "mrml_out", "total"} <= set(out.timings)

    truth = nodes.mask_from_segmentation(user_seg, volume, volume_from_node(volume))
    check_prediction_geometry(out, volume, truth)
    assert np.array_equal(nodes.mask_from_segmentation(out.tumourNode, volume, volume_from_node(volume)).array, truth.array)
    rows = nodes.table_rows(out.tableNode)
    assert len(rows) == 1 and rows[0]["case"] == "NeoNetPhantom" and rows[0]["probability"] == pytest.approx(out.probability)
    assert rows[0]["bundle"] == "bundle" and rows[0]["label"] == out.label and rows[0]["time_total_s"] > 0

    # a re-run updates the same nodes and the same table row
    again = logic.predict(volume, user_seg, bundle=bundle, device="cpu", tta=False)
    assert (again.attentionNode, again.roiNode, again.tumourNode, again.tableNode) == (out.attentionNode, out.roiNode, out.tumourNode, out.tableNode)
    assert len(nodes.table_rows(out.tableNode)) == 1
    assert mrml.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 2  # input + attention

    # saved through Slicer's storage nodes and read back
    files = logic.save_outputs(again, tmp_path / "out")
    assert {p.name for p in files.values()} == {"NeoNetPhantom_attention.nrrd", "NeoNetPhantom_tumour.seg.nrrd",
                                                "NeoNetPhantom_tlcr.mrk.json", "NeoNetPhantom_results.csv"}
    attention = load_volume(context_of(mrml), files["attention"], "attention back")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(attention), slicer.util.arrayFromVolume(again.attentionNode))
    np.testing.assert_allclose(node_matrix(attention), node_matrix(volume), atol=1e-4)
    seg_back = load_segmentation(context_of(mrml), files["tumour"], "tumour back")
    assert np.array_equal(nodes.mask_from_segmentation(seg_back, volume, volume_from_node(volume)).array, truth.array)
    roi_back = mrml.scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    storage = slicer.vtkMRMLMarkupsROIJsonStorageNode()
    mrml.scene.AddNode(storage)
    storage.SetFileName(str(files["roi"]))
    assert storage.ReadData(roi_back)
    np.testing.assert_allclose(ras_center(roi_back), ras_center(again.roiNode), atol=1e-4)
    np.testing.assert_allclose(roi_back.GetSize(), again.roiNode.GetSize(), atol=1e-4)
    table_back = mrml.scene.AddNewNodeByClass("vtkMRMLTableNode")
    tstorage = slicer.vtkMRMLTableStorageNode()
    mrml.scene.AddNode(tstorage)
    tstorage.SetFileName(str(files["table"]))
    assert tstorage.ReadData(table_back)
    back = nodes.table_rows(table_back)[0]
    assert back["case"] == "NeoNetPhantom" and float(back["probability"]) == pytest.approx(again.probability, abs=1e-6)
    with pytest.raises(FileExistsError):
        logic.save_outputs(again, tmp_path / "out")  # never overwrites


def context_of(mrml):
    from NeoNetSlicerLib.scene import SceneContext

    return SceneContext(mrml.scene, mrml.app_logic, mrml.logics)


@pytest.mark.slow
def test_predict_oblique_volume_with_neoseg_lands_on_the_tumour(mrml, bundle, oblique_case):
    node, truth = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    out = logic.predict(node, None, bundle=bundle, device="cpu")
    assert_unchanged(node, before)
    assert out.tumour_source == "neoseg" and 0.0 <= out.probability <= 1.0 and out.uncertainty >= 0.0
    assert out.tumourNode.GetSegmentation().GetNthSegment(0).GetName() == "tumour (NeoSeg)"
    check_prediction_geometry(out, node, truth)


@pytest.mark.slow
def test_predict_real_mri_with_its_tumour_mask(mrml, bundle, data_dir):
    volume = mrml.load_volume(data_dir / "brain_mr_crop.nrrd", "brain")
    user_seg = mrml.load_segmentation(data_dir / "brain_mr_tumor_crop.nrrd", "brain tumour")
    before = snapshot(volume)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    out = logic.predict(volume, user_seg, bundle=bundle, device="cpu")
    assert_unchanged(volume, before)
    truth = nodes.mask_from_segmentation(user_seg, volume, volume_from_node(volume))
    assert truth.array.sum() == 4137
    check_prediction_geometry(out, volume, truth)  # a y-flipped, anisotropic (0.78 x 0.78 x 6.5 mm) real scan


# --- NeoGen patches ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_generate_patches_as_a_sequence_beside_the_real_patch(mrml, bundle):
    from NeoNetSlicerLib.scene import load_segmentation, load_volume

    image_file, seg_file = sample_files()
    volume = load_volume(context_of(mrml), image_file)
    user_seg = load_segmentation(context_of(mrml), seg_file)
    before = snapshot(volume)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    sequence, browser, proxy, real = logic.generate(volume, user_seg, bundle=bundle, count=3, label=1, device="cpu", steps=2)
    assert_unchanged(volume, before)
    assert sequence.GetNumberOfDataNodes() == 3 and browser.GetMasterSequenceNode() is sequence
    real_array = slicer.util.arrayFromVolume(real)
    assert real_array.shape == (32, 32, 32) and 0.0 <= real_array.min() and real_array.max() <= 1.0
    np.testing.assert_allclose(node_matrix(proxy), node_matrix(real), atol=1e-6)  # synthetic and real share the patch grid
    first = slicer.util.arrayFromVolume(proxy).copy()
    third = slicer.util.arrayFromVolume(logic.select_patch(browser, 2))
    assert first.shape == (32, 32, 32) and not np.array_equal(first, third)  # different noise seeds, different patches
    # the patch box is the TLCR box of this tumour
    roi = tumour_roi(volume_from_node(volume), nodes.mask_from_segmentation(user_seg, volume, volume_from_node(volume)), 64.0)
    centre_ras = node_matrix(real) @ np.array([15.5, 15.5, 15.5, 1.0])
    np.testing.assert_allclose(centre_ras[:3], lps_to_ras(np.asarray(roi.center)), atol=1e-4)


@pytest.mark.slow
def test_background_generate_job_gives_the_in_process_patches(mrml, bundle):
    """One generate path: the panel's `neonet generate` job and the console's in-process call make the
    same patches into the same nodes, conditioned on the case's tumour flipped and turned as
    `neonet generate` plans it for the seed (not the raw mask repeated)."""
    from types import SimpleNamespace

    from neonet_core.neogen.generate import plan_synthetic, transform_mask
    from neonet_core.tlcr import tlcr_from_config
    from NeoNetSlicerLib.scene import load_segmentation, load_volume

    image_file, seg_file = sample_files()
    volume = load_volume(context_of(mrml), image_file)
    user_seg = load_segmentation(context_of(mrml), seg_file)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    logic.cli_command = cli_with("generate")

    def shown(browser):
        """(patch, conditioning mask) arrays of each item of ``browser``."""
        conditioning = nodes.find_output(mrml.scene, "vtkMRMLSequenceNode", "conditioning:PNI-", volume.GetID())
        assert conditioning.GetNumberOfDataNodes() == 2
        items = []
        for n in range(2):
            proxy = logic.select_patch(browser, n)
            items.append((slicer.util.arrayFromVolume(proxy).copy(), slicer.util.arrayFromVolume(browser.GetProxyNode(conditioning)).copy()))
        return items

    in_process = logic.generate(volume, user_seg, bundle, count=2, label=0, device="cpu", seed=5, steps=2)
    in_process_items = shown(in_process[1])
    events = []
    sequence, browser, proxy, real = logic.start_generate(volume, user_seg, bundle, count=2, label=0, device="cpu", seed=5, steps=2).wait(events.append)
    assert (sequence, browser, real) == (in_process[0], in_process[1], in_process[3])  # the same output nodes, updated
    assert sequence.GetNumberOfDataNodes() == 2
    np.testing.assert_allclose(node_matrix(proxy), node_matrix(real), atol=1e-4)
    assert events[-1]["event"] == "finished" and events[-1]["ok"]

    image = volume_from_node(volume)
    tumour = tlcr_from_config(image, nodes.mask_from_segmentation(user_seg, volume, image), None, logic.preprocess_config(bundle)).tumour_patch.array
    plans = plan_synthetic([SimpleNamespace(case_id="case")], 2, 5)
    assert any(plan.flips or plan.rot90 for plan in plans) and tumour.any()
    for plan, (patch, mask), (patch_in_process, mask_in_process) in zip(plans, shown(browser), in_process_items):
        np.testing.assert_allclose(patch, patch_in_process, atol=1e-5)
        np.testing.assert_array_equal(mask, mask_in_process)
        np.testing.assert_array_equal(mask, transform_mask(tumour, plan.flips, plan.rot90))
    assert not np.array_equal(in_process_items[0][0], in_process_items[1][0])


@pytest.mark.slow
def test_background_predict_job_matches_in_process(mrml, bundle, oblique_case):
    """The panel's Predict: node -> files -> `neonet predict` subprocess -> the same nodes and numbers."""
    node, truth = oblique_case
    before = snapshot(node)
    logic = NeoNetLogic(mrml.scene, mrml.app_logic)
    logic.cli_command = cli_with("predict")
    direct = logic.predict(node, None, bundle=bundle, device="cpu")
    direct_attention = slicer.util.arrayFromVolume(direct.attentionNode).copy()
    events = []
    job = logic.start_predict(node, None, bundle=bundle, device="cpu")
    out = job.wait(events.append)
    assert_unchanged(node, before)
    assert events[-1] == {"event": "finished", "ok": True, "error": None, "cancelled": False}
    # Not bit-equal: the job's .nrrd round trip moves the geometry by ~1e-16 mm, and this TLCR box has
    # sample points exactly on the image's outer voxel edge (index 39.5), which ITK then counts as inside
    # or outside (image value vs padding) -- a few edge voxels of the patch, a small change of p.
    assert out.probability == pytest.approx(direct.probability, abs=0.01) and out.tumour_source == "neoseg"
    assert out.attentionNode is direct.attentionNode and out.roiNode is direct.roiNode
    attention = slicer.util.arrayFromVolume(out.attentionNode)
    assert np.corrcoef(attention.ravel(), direct_attention.ravel())[0, 1] > 0.95
    check_prediction_geometry(out, node, truth)
    assert {"load", "predict", "predict_classify"} <= set(out.timings)
    assert len(nodes.table_rows(out.tableNode)) == 1


# --- headless batch ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_script_under_plain_python_keeps_going_past_a_bad_case(bundle, data_dir, tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path

    image_file, seg_file = sample_files()
    manifest = tmp_path / "cohort.csv"
    manifest.write_text(
        "case_id,image,tumor_mask\n"
        f"phantom,{image_file},{seg_file}\n"
        f"brain,{data_dir / 'brain_mr_crop.nrrd'},{data_dir / 'brain_mr_tumor_crop.nrrd'}\n"
        f"broken,{tmp_path / 'not_a_volume.nrrd'},\n"
    )
    (tmp_path / "not_a_volume.nrrd").write_text("NRRD0004\nthis is not a volume\n")
    script = Path(__file__).resolve().parents[1] / "NeoNetSlicer" / "Scripts" / "batch_predict.py"
    out = tmp_path / "results.csv"
    run = subprocess.run(
        [sys.executable, str(script), "--", "--manifest", str(manifest), "--bundle", str(bundle), "--out", str(out),
         "--outputs", str(tmp_path / "nodes"), "--device", "cpu", "--no-tta"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 1, run.stderr  # one case failed
    rows = {r["case_id"]: r for r in csv.DictReader(out.open())}
    assert [rows[c]["status"] for c in ("phantom", "brain", "broken")] == ["ok", "ok", "failed"]
    assert "not_a_volume.nrrd" in rows["broken"]["error"]
    for case in ("phantom", "brain"):
        assert 0.0 <= float(rows[case]["probability"]) <= 1.0 and rows[case]["tumour_source"] == "user"
        assert rows[case]["label"] in ("PNI-", "PNI+") and rows[case]["bundle"] == "bundle"
    saved = sorted(p.name for p in (tmp_path / "nodes").iterdir())
    assert "phantom_attention.nrrd" in saved and "brain_tumour.seg.nrrd" in saved and "brain_tlcr.mrk.json" in saved
    assert "[3/3] broken: FAILED" in run.stderr
    # a second run never overwrites the results
    again = subprocess.run([sys.executable, str(script), "--manifest", str(manifest), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr
