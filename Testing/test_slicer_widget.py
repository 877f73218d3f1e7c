"""The real NeoNetSlicer.py Widget, offscreen: PySide6 behind a PythonQt-style test shim for the compiled
Slicer/CTK widgets (Testing/pythonqt_shim.py, Testing/slicer_app_shim.py), over a real MRML scene (slicer-core wheel), the wheel's own
slicer.util, QSettings in a temporary folder, and the real ``neonet`` CLI with the demo bundle.

Settings surviving a reopen, the volume and tumour selectors, Predict through the panel and everything
done with its result (explanation, overlay, opacity, centre on ROI, table, saving), a failed job's log
and kept work folder, Cancel, scene close, the debounced model card, Localize and Generate, the self-test
and Reload. What needs the real Slicer application (layout widgets, dialogs, the Extensions Manager) is
checked in a real Slicer: NeoNetSlicer/Scripts/slicer_selftest.sh.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from PySide6 import QtCore  # noqa: E402

from slicer_scene import slicer  # noqa: E402  (skips without the slicer-core wheel)

ROOT = Path(__file__).resolve().parents[1]
MODULE_FILE = ROOT / "NeoNetSlicer" / "NeoNetSlicer.py"
DEMO = ROOT / "Resources" / "Models" / "neonet-demo"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="NeoNet's packages are not installed here")
needs_demo = pytest.mark.skipif(not (DEMO / "bundle.json").is_file(), reason="the demo bundle is not in this checkout")

import slicer_app_shim  # noqa: E402
from NeoNetSlicerLib import nodes  # noqa: E402
from NeoNetSlicerLib.sampledata import SAMPLE_FILES, sample_data_dir  # noqa: E402
from NeoNetSlicerLib.scene import SceneContext, load_volume, standalone_scene  # noqa: E402
from NeoNetSlicerLib.worker import WorkerRun  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The shim installed over a standalone scene with Slicer's three slice views and a layout node;
    ``NeoNetSlicer`` imported through it. Everything is put back afterwards."""
    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    QtCore.QCoreApplication.setOrganizationName("NeoNetWidgetTest")
    QtCore.QSettings.setDefaultFormat(QtCore.QSettings.IniFormat)
    QtCore.QSettings.setPath(QtCore.QSettings.IniFormat, QtCore.QSettings.UserScope, str(tmp_path_factory.mktemp("settings")))
    context = standalone_scene()
    saved = slicer_app_shim.install(context.app_logic, MODULE_FILE)
    sys.modules.pop("NeoNetSlicer", None)
    import NeoNetSlicer

    yield NeoNetSlicer, context, qapp
    sys.modules.pop("NeoNetSlicer", None)
    slicer_app_shim.uninstall(saved)


@pytest.fixture
def env(app):
    """A cleared scene with views, cleared settings, and ``open_panel()`` (closed again at the end)."""
    module, context, qapp = app
    context.scene.Clear(0)
    for name in ("Red", "Yellow", "Green"):
        if context.scene.GetSingletonNode(name, "vtkMRMLSliceNode") is None:
            for cls in (slicer.vtkMRMLSliceNode, slicer.vtkMRMLSliceCompositeNode):
                view = cls()
                view.SetLayoutName(name)
                context.scene.AddNode(view)
    layout = slicer.vtkMRMLLayoutNode()
    layout.SetSingletonTag("vtkMRMLLayoutNode")
    layout = context.scene.AddNode(layout)  # the scene's one, if a singleton is there already
    QtCore.QSettings().clear()
    panels = []

    def open_panel():
        import qt

        parent = slicer.qMRMLWidget()  # as Slicer's module panel does: a parent, then setup()
        parent.setLayout(qt.QVBoxLayout())
        parent.setMRMLScene(slicer.mrmlScene)
        widget = module.NeoNetSlicerWidget(parent)
        widget.setup()
        panels.append(widget)
        return widget

    yield type("Env", (), {"module": module, "scene": context.scene, "context": SceneContext(context.scene, context.app_logic, {}),
                           "qapp": qapp, "open_panel": staticmethod(open_panel), "layout": layout})
    for widget in panels:
        widget.cleanup()
        widget.parent.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)  # gone, as a closed Slicer panel


def settle(qapp, until, timeout=240.0):
    """Run the Qt event loop (the panel's timers) until ``until()`` is true."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out waiting for the panel"
        qapp.processEvents()
        time.sleep(0.02)


def sample_volume(env):
    return load_volume(env.context, sample_data_dir() / list(SAMPLE_FILES)[0])


def combo_items(combo):
    return [combo.itemText(i) for i in range(combo.count)]


# --- settings ------------------------------------------------------------------------------------
def test_settings_survive_a_reopen(env, tmp_path):
    """Issue 13 failure 1: stored values were overwritten by the widget defaults while being restored."""
    panel = env.open_panel()
    bundle = tmp_path / "my bundle"
    bundle.mkdir()
    panel.ui.bundlePathLineEdit.currentPath = str(bundle)
    panel.ui.deviceComboBox.currentIndex = combo_items(panel.ui.deviceComboBox).index("CPU")
    panel.ui.patchCountSpinBox.value = 9
    panel.ui.patchClassComboBox.currentIndex = 1
    panel.ui.attentionCheckBox.checked = False
    panel.ui.opacitySlider.value = 30
    panel.cleanup()
    stored = {key: QtCore.QSettings().value(key) for key in QtCore.QSettings().allKeys()}

    again = env.open_panel()
    ui = again.ui
    assert (ui.bundlePathLineEdit.currentPath, again.device(), ui.patchCountSpinBox.value, ui.patchClassComboBox.currentText,
            ui.attentionCheckBox.checked, ui.opacitySlider.value) == (str(bundle), "cpu", 9, "PNI-", False, 30)
    assert {key: QtCore.QSettings().value(key) for key in QtCore.QSettings().allKeys()} == stored  # opening wrote nothing


def test_a_stored_gpu_this_machine_lacks_stays_chosen(env):
    """('CUDA', GPU 3) as an earlier version stored it: kept, and listed as not found, even after the device probe."""
    settings = QtCore.QSettings()
    settings.setValue("NeoNetSlicer/Device", "CUDA")
    settings.setValue("NeoNetSlicer/GpuIndex", 3)
    panel = env.open_panel()
    settle(env.qapp, lambda: panel.probe is None or panel.probe.finished)
    panel.onTimer()
    assert panel.device() == "cuda:3" and panel.ui.deviceComboBox.currentText == "cuda:3 (not found)"
    assert combo_items(panel.ui.deviceComboBox)[:2] == ["auto", "CPU"]


@needs_torch
def test_devices_come_from_pytorch(env):
    import torch

    panel = env.open_panel()
    settle(env.qapp, lambda: panel.devices is not None)
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    expected = ["auto", "CPU", *[f"CUDA {i}: {n}" for i, n in enumerate(names)]]
    assert combo_items(panel.ui.deviceComboBox)[: len(expected)] == expected
    assert panel.devices["mps"] is (sys.platform == "darwin" and torch.backends.mps.is_available())


# --- inputs --------------------------------------------------------------------------------------
def test_volume_is_selected_and_neonet_outputs_are_not_offered(env):
    panel = env.open_panel()
    assert panel.ui.inputVolumeSelector.currentNode() is None and not panel.ui.predictButton.enabled
    volume = env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MRI")
    assert panel.ui.inputVolumeSelector.currentNode() is volume and panel.ui.predictButton.enabled
    nodes.output_node(env.scene, "vtkMRMLScalarVolumeNode", "attention", volume.GetID(), "MRI NeoNet attention")
    other = env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "second MRI")
    assert combo_items(panel.ui.inputVolumeSelector) == ["MRI", "second MRI"]
    panel.ui.inputVolumeSelector.setCurrentNode(other)
    assert panel.inputs()[0] is other


def test_tumour_from_a_labelmap_or_one_segment_of_several(env):
    panel = env.open_panel()
    volume = env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MRI")
    segmentation = env.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "structures")
    for name in ("liver", "tumour", "duct"):
        segmentation.GetSegmentation().AddEmptySegment(name, name)
    labelmap = env.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "tumour labelmap")
    assert combo_items(panel.ui.tumourSelector) == ["auto (NeoSeg)", "structures", "tumour labelmap"]
    panel.ui.tumourSelector.setCurrentNode(segmentation)
    combo = panel.ui.tumourSegmentComboBox
    assert not combo.isHidden() and combo_items(combo) == ["liver", "tumour", "duct"] and combo.currentText == "tumour"
    combo.currentIndex = 2
    assert panel.inputs() == (volume, segmentation, "duct")
    panel.ui.tumourSelector.setCurrentNode(labelmap)
    assert combo.isHidden() and panel.inputs() == (volume, labelmap, None)


def test_a_saved_scene_brings_back_its_inputs_bundle_and_device(env, tmp_path):
    """The module's parameter node holds this scene's choices; QSettings only the defaults."""
    panel = env.open_panel()
    env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "first")
    second = env.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "second")
    tumour = env.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "tumour")
    nodes.output_node(env.scene, "vtkMRMLScalarVolumeNode", "attention", second.GetID(), "second NeoNet attention")
    panel.ui.inputVolumeSelector.setCurrentNode(second)
    panel.ui.tumourSelector.setCurrentNode(tumour)
    panel.ui.bundlePathLineEdit.currentPath = str(tmp_path / "bundle of this case")
    panel.ui.deviceComboBox.currentIndex = combo_items(panel.ui.deviceComboBox).index("CPU")
    env.scene.SetURL(str(tmp_path / "case.mrml"))
    assert env.scene.Commit()
    panel.ui.bundlePathLineEdit.currentPath = str(tmp_path / "another bundle")  # the user moves on
    panel.ui.deviceComboBox.currentIndex = 0
    env.scene.Clear(0)
    env.scene.SetURL(str(tmp_path / "case.mrml"))
    env.scene.Import()  # File > Load scene, with the panel open
    env.qapp.processEvents()
    assert panel.ui.inputVolumeSelector.currentNode().GetName() == "second"
    assert combo_items(panel.ui.inputVolumeSelector) == ["first", "second"]  # NeoNet's saved outputs are no inputs
    assert panel.ui.tumourSelector.currentNode().GetName() == "tumour"
    assert (panel.ui.bundlePathLineEdit.currentPath, panel.device()) == (str(tmp_path / "bundle of this case"), "cpu")
    assert QtCore.QSettings().value("NeoNetSlicer/BundlePath") == str(tmp_path / "another bundle")  # the default is kept


def test_model_card_loads_once_typing_pauses(env, tmp_path):
    panel = env.open_panel()
    settle(env.qapp, lambda: not panel.cardTimer.isActive())
    updates = []
    QtWidgets.QTextBrowser.textChanged.__get__(panel.ui.modelCardTextBrowser).connect(lambda: updates.append(1))
    for n in range(5):  # a path typed letter by letter
        panel.ui.bundlePathLineEdit.currentPath = str(tmp_path)[: len(str(tmp_path)) - 4 + n]
    assert updates == []
    settle(env.qapp, lambda: updates)
    env.qapp.processEvents()
    time.sleep(0.5)
    env.qapp.processEvents()
    from NeoNetSlicerLib.base import model_card_text

    assert len(updates) == 1 and panel.ui.modelCardTextBrowser.toPlainText() == model_card_text(str(tmp_path))


# --- jobs ----------------------------------------------------------------------------------------
@needs_torch
@needs_demo
def test_predict_through_the_panel_and_use_its_result(env, tmp_path):
    panel = env.open_panel()
    volume = sample_volume(env)
    panel.ui.deviceComboBox.currentIndex = combo_items(panel.ui.deviceComboBox).index("CPU")
    settle(env.qapp, lambda: panel.devices is not None)  # PyTorch answered: the panel starts its warm worker
    worker = panel.logic.warm_worker
    assert worker is not None and worker.alive
    panel.ui.predictButton.click()
    assert panel.job is not None and panel.ui.cancelButton.enabled and not panel.ui.predictButton.enabled
    settle(env.qapp, lambda: panel.job is None)
    out = panel.lastOutput
    assert out is not None, panel.ui.statusLabel.text
    assert isinstance(panel.lastJob.runner, WorkerRun) and panel.lastJob.runner.pid == worker.pid and worker.alive
    assert panel.ui.statusLabel.text.startswith("NeoNetPhantom: p(PNI) = ") and panel.ui.statusLabel.text.endswith("on cpu")
    assert panel.ui.probabilityLabel.text == f"{out.probability:.2f}" and panel.ui.labelLabel.text == out.label
    text = panel.ui.explanationLabel.text.splitlines()
    sign = "≥" if out.probability >= out.threshold else "<"
    assert text[0] == f"p(PNI) {out.probability:.2f} {sign} threshold {out.threshold:.2f} -> {out.label}"
    band = (out.probability - 2 * out.uncertainty, out.probability + 2 * out.uncertainty)
    assert ("BORDERLINE: the test-time augmentation band crosses the threshold." in text) == (band[0] <= out.threshold <= band[1])
    assert text[-1] == "Research software: not for clinical use."

    views = [env.scene.GetSingletonNode(n, "vtkMRMLSliceCompositeNode") for n in ("Red", "Yellow", "Green")]
    assert all(v.GetBackgroundVolumeID() == volume.GetID() and v.GetForegroundVolumeID() == out.attentionNode.GetID() for v in views)
    panel.ui.opacitySlider.value = 30
    assert all(v.GetForegroundOpacity() == pytest.approx(0.3) for v in views)
    panel.ui.attentionCheckBox.checked = False
    assert all(v.GetForegroundVolumeID() is None for v in views)
    assert env.context.app_logic.GetModuleLogic("Colors").GetColorLegendDisplayNode(out.attentionNode) is not None

    panel.ui.centreButton.click()
    centre = [0.0, 0.0, 0.0]
    out.roiNode.GetCenterWorld(centre)
    red = env.scene.GetSingletonNode("Red", "vtkMRMLSliceNode")
    np.testing.assert_allclose([red.GetSliceToRAS().GetElement(r, 3) for r in range(3)], centre, atol=1e-6)
    panel.ui.tableButton.click()
    assert env.context.app_logic.GetSelectionNode().GetActiveTableID() == out.tableNode.GetID()
    assert env.layout.GetViewArrangement() == env.layout.SlicerLayoutFourUpTableView

    panel.ui.exportPathLineEdit.currentPath = str(tmp_path / "saved")
    panel.ui.exportButton.click()
    assert sorted(p.name for p in (tmp_path / "saved").iterdir() if "schema" not in p.name) == [
        "NeoNetPhantom_attention.nrrd", "NeoNetPhantom_results.csv", "NeoNetPhantom_tlcr.mrk.json", "NeoNetPhantom_tumour.seg.nrrd"]
    panel.ui.exportButton.click()
    assert "already exists" in panel.ui.statusLabel.text  # never overwritten
    assert combo_items(panel.ui.inputVolumeSelector) == ["NeoNetPhantom"]  # the attention map is no input
    panel.ui.predictButton.click()  # again: the same warm process answers
    settle(env.qapp, lambda: panel.job is None)
    assert panel.lastOutput is not None and panel.lastJob.runner.pid == worker.pid


@needs_torch
def test_a_failed_job_shows_its_whole_log_and_keeps_its_folder(env, tmp_path):
    panel = env.open_panel()
    sample_volume(env)
    (tmp_path / "not a bundle").mkdir()
    panel.ui.bundlePathLineEdit.currentPath = str(tmp_path / "not a bundle")
    panel.ui.predictButton.click()
    settle(env.qapp, lambda: panel.job is None)
    status = panel.ui.statusLabel.text
    assert status.startswith("Predict failed: neonet predict: error: ") and "not a NeoNet bundle" in status and "Show log" in status
    panel.ui.showLogButton.click()
    log = panel.ui.logTextEdit.toPlainText().splitlines()
    assert not panel.ui.logCollapsibleButton.collapsed and log[0].startswith("$ ") and " predict --bundle " in log[0]
    assert any(line.startswith("stderr: neonet predict: error: ") for line in log)
    kept = Path(log[-1].split(": ", 1)[1])
    assert log[-1].startswith("Work folder kept for inspection: ") and (kept / "image.nrrd").is_file()
    assert b"encoding: raw" in (kept / "image.nrrd").read_bytes()[:400]  # the job input is not gzipped
    import shutil

    shutil.rmtree(kept)


@needs_torch
@needs_demo
def test_cancel_and_scene_close_stop_the_job(env):
    panel = env.open_panel()
    sample_volume(env)
    panel.ui.predictButton.click()
    job = panel.job
    panel.ui.cancelButton.click()
    assert panel.job is None and job.error == "cancelled" and job.runner.process.poll() is not None
    assert panel.ui.statusLabel.text == "Cancelled." and not job.workdir.exists() and panel.ui.predictButton.enabled
    panel.ui.predictButton.click()
    job = panel.job
    env.scene.Clear(0)
    assert panel.job is None and job.error == "cancelled" and job.runner.process.poll() is not None
    assert panel.ui.probabilityLabel.text == "–" and not panel.ui.predictButton.enabled


@pytest.mark.slow
@needs_torch
@needs_demo
def test_localize_then_generate_beside_the_real_patch(env):
    panel = env.open_panel()
    volume = sample_volume(env)
    red, yellow, green = (env.scene.GetSingletonNode(n, "vtkMRMLSliceCompositeNode") for n in ("Red", "Yellow", "Green"))
    for view in (red, yellow, green):  # Slicer shows a loaded volume in every view
        view.SetBackgroundVolumeID(volume.GetID())
    panel.ui.localizeButton.click()
    settle(env.qapp, lambda: panel.job is None)
    assert panel.ui.statusLabel.text.startswith("Tumour found: "), panel.ui.statusLabel.text
    tumour = nodes.find_output(env.scene, "vtkMRMLSegmentationNode", "tumour", volume.GetID())
    assert tumour is not None and tumour.GetSegmentation().GetNthSegment(0).GetName() == "tumour (NeoSeg)"
    panel.ui.patchCountSpinBox.value = 2
    panel.ui.generateButton.click()
    settle(env.qapp, lambda: panel.job is None)
    assert "2 synthetic patches" in panel.ui.statusLabel.text, panel.ui.statusLabel.text
    real = nodes.find_output(env.scene, "vtkMRMLScalarVolumeNode", "real_patch", volume.GetID())
    assert env.layout.GetViewArrangement() == env.layout.SlicerLayoutSideBySideView
    assert yellow.GetBackgroundVolumeID() == real.GetID() and red.GetBackgroundVolumeID() not in (real.GetID(), volume.GetID())
    assert red.GetLabelVolumeID() and yellow.GetLabelVolumeID() and red.GetLinkedControl() and yellow.GetLinkedControl()
    assert green.GetBackgroundVolumeID() == volume.GetID()  # the case stays in the third view
    assert panel.ui.patchSeekWidget.maximum == 1
    assert combo_items(panel.ui.inputVolumeSelector) == ["NeoNetPhantom"]  # patches and proxies are no inputs


# --- module plumbing -----------------------------------------------------------------------------
def test_self_test_runs_or_skips_cleanly(env):
    """Slicer's "Reload and Test" / the extension's CTest: predicts where NeoNet's packages are installed,
    skips (without failing) where they are not, as in the extension factory."""
    env.module.NeoNetSlicerTest().runTest()


def test_reload_reloads_the_lib_package(env, app):
    panel = env.open_panel()
    before = sys.modules["NeoNetSlicerLib.panel"]
    panel.onReload()
    assert sys.modules["NeoNetSlicerLib.panel"] is not before
    sys.modules["NeoNetSlicer"] = app[0]  # the rest of this module keeps the imported one
