"""NeoNet PNI: perineural invasion prediction from 3D MRI, as a 3D Slicer scripted module.

The Widget only wires the panel (Resources/UI/NeoNetSlicer.ui) to the Qt-free Logic in
NeoNetSlicerLib; long work runs in a background ``neonet`` CLI process polled by a timer.
Console: ``slicer.util.getModuleLogic("NeoNetSlicer").predict(volumeNode, segmentationNode=None, bundle=..., device="auto")``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from NeoNetSlicerLib.base import default_bundle_path, model_card_text
from NeoNetSlicerLib.logic import NeoNetLogic

SETTINGS = "NeoNetSlicer/"
DEVICES = {"auto": "auto", "CPU": "cpu", "CUDA": "cuda", "MPS": "mps"}


# --- module -----------------------------------------------------------------------------------------
class NeoNetSlicer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "NeoNet PNI"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["NeoNet developers"]
        self.parent.helpText = (
            "Predicts perineural invasion (PNI) of cholangiocarcinoma from a 3D MRI: NeoSeg finds the tumour, "
            "a tumour-localised crop goes to the PattenNet classifier, and the attention map shows where it looked. "
            "Research software, not for clinical use. See the README of the NeoNet repository."
        )
        self.parent.acknowledgementText = (
            "Method: NeoNet (arXiv 2603.29449). This implementation: the NeoNet project. "
            "Sample data: a synthetic phantom made by neonet_core.phantom."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Offer the phantom case in the Sample Data module (local files, SHA-256 checked)."""
    try:
        import SampleData
    except ImportError:
        return
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, registration_arguments, sample_data_dir

    if not all((sample_data_dir() / name).is_file() for name in SAMPLE_FILES):
        return
    icon = Path(__file__).parent / "Resources" / "Icons" / "NeoNetSlicer.png"
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**registration_arguments(thumbnail=icon))


# --- logic (the console API) -----------------------------------------------------------------------
class NeoNetSlicerLogic(ScriptedLoadableModuleLogic, NeoNetLogic):
    """Slicer's module logic: all behaviour lives in NeoNetSlicerLib.logic.NeoNetLogic (no Qt)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        NeoNetLogic.__init__(self)


# --- widget (thin) ---------------------------------------------------------------------------------
class NeoNetSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.job = None
        self.lastOutput = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/NeoNetSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = NeoNetSlicerLogic()

        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.onTimer)

        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.ui.bundlePathLineEdit.connect("currentPathChanged(QString)", self.onBundleChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.localizeButton.connect("clicked(bool)", self.onLocalize)
        self.ui.generateButton.connect("clicked(bool)", self.onGenerate)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.attentionCheckBox.connect("toggled(bool)", self.onAttentionToggled)
        for widget, signal in ((self.ui.gpuIndexSpinBox, "valueChanged(int)"), (self.ui.patchCountSpinBox, "valueChanged(int)"),
                               (self.ui.patchClassComboBox, "currentIndexChanged(int)")):
            widget.connect(signal, self.saveSettings)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.restoreSettings()
        self.updateButtons()

    def cleanup(self):
        self.removeObservers()
        if self.job is not None:
            self.job.cancel()
        self.timer.stop()

    def onSceneEndClose(self, caller=None, event=None):
        self.onCancel()
        self.lastOutput = None
        self.showResult(None)

    # --- settings ----------------------------------------------------------------------------
    def restoreSettings(self):
        settings = qt.QSettings()
        bundle = settings.value(SETTINGS + "BundlePath", "")
        if not bundle and default_bundle_path() is not None:
            bundle = str(default_bundle_path())
        self.ui.bundlePathLineEdit.currentPath = bundle
        self.ui.deviceComboBox.currentText = settings.value(SETTINGS + "Device", "auto")
        self.ui.gpuIndexSpinBox.value = int(settings.value(SETTINGS + "GpuIndex", 0))
        self.ui.patchCountSpinBox.value = int(settings.value(SETTINGS + "PatchCount", 4))
        self.ui.patchClassComboBox.currentIndex = int(settings.value(SETTINGS + "PatchClass", 0))
        self.ui.attentionCheckBox.checked = settings.value(SETTINGS + "ShowAttention", "true") in (True, "true")
        self.onBundleChanged(self.ui.bundlePathLineEdit.currentPath)
        self.onDeviceChanged()

    def saveSettings(self, *unused):
        settings = qt.QSettings()
        settings.setValue(SETTINGS + "BundlePath", self.ui.bundlePathLineEdit.currentPath)
        settings.setValue(SETTINGS + "Device", self.ui.deviceComboBox.currentText)
        settings.setValue(SETTINGS + "GpuIndex", self.ui.gpuIndexSpinBox.value)
        settings.setValue(SETTINGS + "PatchCount", self.ui.patchCountSpinBox.value)
        settings.setValue(SETTINGS + "PatchClass", self.ui.patchClassComboBox.currentIndex)
        settings.setValue(SETTINGS + "ShowAttention", "true" if self.ui.attentionCheckBox.checked else "false")

    # --- inputs ------------------------------------------------------------------------------
    def bundle(self):
        return self.ui.bundlePathLineEdit.currentPath or None

    def device(self) -> str:
        device = DEVICES.get(self.ui.deviceComboBox.currentText, "auto")
        return f"cuda:{self.ui.gpuIndexSpinBox.value}" if device == "cuda" else device

    def onBundleChanged(self, path):
        self.ui.modelCardTextBrowser.setPlainText(model_card_text(path or None))
        self.saveSettings()
        self.updateButtons()

    def onDeviceChanged(self, *unused):
        self.ui.gpuIndexSpinBox.enabled = self.ui.deviceComboBox.currentText == "CUDA"
        self.saveSettings()

    def updateButtons(self, *unused):
        idle = self.job is None
        has_input = self.ui.inputVolumeSelector.currentNode() is not None
        for button in (self.ui.localizeButton, self.ui.generateButton, self.ui.predictButton):
            button.enabled = idle and has_input
        self.ui.cancelButton.enabled = not idle

    # --- actions -----------------------------------------------------------------------------
    def ensureDependencies(self) -> bool:
        from NeoNetSlicerLib import dependencies

        try:
            return dependencies.ensure(lambda message: slicer.util.confirmOkCancelDisplay(message, "NeoNet: install Python packages"))
        except Exception as err:
            slicer.util.errorDisplay(f"Installing NeoNet's Python packages failed: {err}")
            return False

    def startJob(self, make_job, what: str):
        if not self.ensureDependencies():
            self.setStatus("Python packages not installed; nothing was run.")
            return
        try:
            self.job = make_job()
        except Exception as err:
            logging.exception("NeoNet: could not start %s", what)
            self.setStatus(f"{what} failed: {err}", error=True)
            return
        self.jobWhat = what
        self.ui.progressBar.setRange(0, 0)  # busy until the CLI reports a fraction
        self.setStatus(f"{what}: starting ({self.job.current_device})")
        self.updateButtons()
        self.timer.start()

    def onLocalize(self):
        volume = self.ui.inputVolumeSelector.currentNode()
        self.startJob(lambda: self.logic.start_localize(volume, self.bundle(), self.device()), "Localize")

    def onGenerate(self):
        volume, tumour = self.ui.inputVolumeSelector.currentNode(), self.ui.tumourSelector.currentNode()
        label = 1 if self.ui.patchClassComboBox.currentText == "PNI+" else 0
        count = self.ui.patchCountSpinBox.value
        self.startJob(lambda: self.logic.start_generate(volume, tumour, self.bundle(), count, label, self.device()), "Generate")

    def onPredict(self):
        volume, tumour = self.ui.inputVolumeSelector.currentNode(), self.ui.tumourSelector.currentNode()
        self.startJob(lambda: self.logic.start_predict(volume, tumour, self.bundle(), self.device()), "Predict")

    def onCancel(self):
        if self.job is not None:
            self.job.cancel()
            self.onTimer()

    def onTimer(self):
        if self.job is None:
            self.timer.stop()
            return
        for event in self.job.poll():
            self.onEvent(event)
        if self.job.done:
            self.timer.stop()
            job, self.job = self.job, None
            self.updateButtons()
            self.onJobDone(job)

    def onEvent(self, event):
        from NeoNetSlicerLib.jobs import describe

        if event.get("event") == "progress" and event.get("fraction") is not None:
            self.ui.progressBar.setRange(0, 100)
            self.ui.progressBar.value = int(round(100 * event["fraction"]))
        if event.get("event") == "warning":
            self.setStatus(describe(event), warning=True)
            slicer.util.showStatusMessage(describe(event), 10000)
            logging.warning("NeoNet: %s", event.get("message"))
        elif event.get("event") in ("progress", "done"):
            self.setStatus(f"{self.jobWhat}: {describe(event)}")

    def onJobDone(self, job):
        self.ui.progressBar.setRange(0, 100)
        self.ui.progressBar.value = 0
        if job.error:
            self.setStatus("Cancelled." if job.error == "cancelled" else f"{self.jobWhat} failed: {job.error}", error=job.error != "cancelled")
            return
        self.ui.progressBar.value = 100
        note = f" ({'; '.join(job.warnings)})" if job.warnings else ""
        if job.name == "localize":
            tumourNode, roiNode, ml = job.result
            self.setStatus(f"Tumour found: {ml:.1f} mL (segmentation '{tumourNode.GetName()}', box '{roiNode.GetName()}'){note}", warning=bool(note))
        elif job.name == "generate":
            sequence, browser, proxy, real = job.result
            self.ui.patchSeekWidget.setMRMLSequenceBrowserNode(browser)
            slicer.util.setSliceViewerLayers(background=proxy, foreground=None, fit=True)
            self.setStatus(f"{sequence.GetNumberOfDataNodes()} synthetic patches: scroll with the slider; real patch: '{real.GetName()}'{note}", warning=bool(note))
        elif job.name == "predict":
            self.lastOutput = job.result
            self.showResult(job.result)
            self.onAttentionToggled(self.ui.attentionCheckBox.checked)
            self.setStatus(f"{job.result.summary()} in {job.seconds:.1f} s{note}", warning=bool(note))

    def showResult(self, out):
        self.ui.probabilityLabel.text = "–" if out is None else f"{out.probability:.2f}"
        self.ui.labelLabel.text = "–" if out is None else out.label
        self.ui.uncertaintyLabel.text = "–" if out is None or out.uncertainty is None else f"±{out.uncertainty:.2f}"

    def onAttentionToggled(self, checked):
        self.saveSettings()
        volume = self.ui.inputVolumeSelector.currentNode()
        if volume is not None:
            self.logic.set_attention_visible(volume, bool(checked))

    def setStatus(self, text, warning=False, error=False):
        self.ui.statusLabel.text = text
        color = "#c0392b" if error else "#d35400" if warning else ""
        self.ui.statusLabel.setStyleSheet(f"color: {color}; font-weight: bold;" if color else "")


# --- self-test (runs inside Slicer: Developer mode -> Reload and Test) -------------------------------
class NeoNetSlicerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_geometry_round_trip()
        self.setUp()
        self.test_predict_on_sample_data()

    def test_geometry_round_trip(self):
        """An oblique volume node -> Volume -> new node: same voxels and IJKToRAS; the input is untouched."""
        import numpy as np

        from NeoNetSlicerLib.geometry import geometry_to_ijk_to_ras, update_node_from_volume, volume_from_node
        from NeoNetSlicerLib.geometry import numpy_to_vtk_matrix, vtk_to_numpy_matrix

        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "oblique")
        angle = np.radians(30)
        direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        matrix = geometry_to_ijk_to_ras((0.8, 1.2, 2.5), (10.0, -20.0, 5.0), direction)
        slicer.util.updateVolumeFromArray(node, np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8))
        node.SetIJKToRASMatrix(numpy_to_vtk_matrix(matrix))
        volume = volume_from_node(node)
        copy = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "copy")
        update_node_from_volume(copy, volume)
        import vtk

        m = vtk.vtkMatrix4x4()
        copy.GetIJKToRASMatrix(m)
        self.assertTrue(np.allclose(vtk_to_numpy_matrix(m), matrix, atol=1e-6))
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(copy), slicer.util.arrayFromVolume(node)))
        self.delayDisplay("geometry round trip passed")

    def test_predict_on_sample_data(self):
        """Predict on the phantom sample data with the demo bundle (skipped when the bundle is not installed)."""
        import numpy as np

        if default_bundle_path() is None:
            self.delayDisplay("demo bundle not installed: prediction self-test skipped")
            return
        import SampleData

        registerSampleData()
        volume = SampleData.downloadSample("NeoNetPhantom")
        before = slicer.util.arrayFromVolume(volume).copy()
        logic = slicer.util.getModuleLogic("NeoNetSlicer")
        out = logic.predict(volume, None, bundle=None, device="cpu")
        self.assertTrue(0.0 <= out.probability <= 1.0)
        self.assertIsNotNone(out.attentionNode)
        self.assertIsNotNone(out.roiNode)
        self.assertTrue(np.array_equal(slicer.util.arrayFromVolume(volume), before))
        self.delayDisplay(out.summary())
