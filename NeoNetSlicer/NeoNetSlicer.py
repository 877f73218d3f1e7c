"""NeoNet PNI: perineural invasion prediction from 3D MRI, as a 3D Slicer scripted module.

The Widget only wires the panel (Resources/UI/NeoNetSlicer.ui) to the Qt-free Logic and presenter in
NeoNetSlicerLib; long work runs in a background ``neonet`` CLI process polled by a timer.
Console: ``slicer.util.getModuleLogic("NeoNetSlicer").predict(volumeNode, segmentationNode=None, bundle=..., device="auto")``.
"""

from __future__ import annotations

import logging
import sys

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from NeoNetSlicerLib import nodes, panel
from NeoNetSlicerLib.base import default_bundle_path, model_card_text
from NeoNetSlicerLib.logic import NeoNetLogic


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
    from NeoNetSlicerLib.sampledata import register

    register()


# --- logic (the console API) -----------------------------------------------------------------------
class NeoNetSlicerLogic(ScriptedLoadableModuleLogic, NeoNetLogic):
    """Slicer's module logic: all behaviour lives in NeoNetSlicerLib.logic.NeoNetLogic (no Qt)."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        NeoNetLogic.__init__(self)


# --- widget (thin) ---------------------------------------------------------------------------------
class NeoNetSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """QSettings keep the panel's defaults between sessions; the module's parameter node keeps this scene's
    inputs, bundle and device, so a saved scene reopens with them."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = self.job = self.lastJob = self.lastOutput = self.devices = self.probe = None
        self.installing = self.reading = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/NeoNetSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = NeoNetSlicerLogic()
        self.blocked = panel.python_problem()  # an old Slicer: the panel opens and says which one it needs
        self.timer = self.makeTimer(200, self.onTimer)
        self.cardTimer = self.makeTimer(400, self.updateModelCard, single=True)  # debounce path typing
        self.restoreSettings()  # before the change signals are connected: reading writes nothing back
        self.readParameters()
        for widget, signal, slot in (
            (self.ui.inputVolumeSelector, "currentNodeChanged(vtkMRMLNode*)", self.onInputChanged),
            (self.ui.tumourSelector, "currentNodeChanged(vtkMRMLNode*)", self.onTumourChanged),
            (self.ui.tumourSegmentComboBox, "currentIndexChanged(int)", self.onInputChanged),
            (self.ui.bundlePathLineEdit, "currentPathChanged(QString)", self.onBundleChanged),
            (self.ui.deviceComboBox, "currentIndexChanged(int)", self.saveSettings),
            (self.ui.patchCountSpinBox, "valueChanged(int)", self.saveSettings),
            (self.ui.patchClassComboBox, "currentIndexChanged(int)", self.saveSettings),
            (self.ui.attentionCheckBox, "toggled(bool)", self.onOverlayChanged),
            (self.ui.opacitySlider, "valueChanged(int)", self.onOverlayChanged),
        ):
            widget.connect(signal, slot)
        for name in ("localize", "generate", "predict", "cancel", "centre", "table", "export", "showLog"):
            getattr(self.ui, name + "Button").connect("clicked(bool)", getattr(self, "on" + name[0].upper() + name[1:]))
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneImported, priority=1.0)  # before the selectors
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.hideOwnOutputs)
        self.hideOwnOutputs()
        self.updateModelCard()
        self.startDeviceProbe()
        self.updateButtons()
        if self.blocked:
            self.setStatus(self.blocked, error=True)

    def makeTimer(self, msec, slot, single=False):
        timer = qt.QTimer()
        timer.setInterval(msec)
        timer.setSingleShot(single)
        timer.connect("timeout()", slot)
        return timer

    def cleanup(self):
        self.removeObservers()
        for running in (self.job, self.probe, self.logic and self.logic.warm_worker):
            if running is not None:
                running.cancel()
        self.timer.stop()
        self.cardTimer.stop()

    def onReload(self):
        """Reload the Lib package too (Slicer's reload re-imports only this file)."""
        for name in [m for m in sys.modules if m == "NeoNetSlicerLib" or m.startswith("NeoNetSlicerLib.")]:
            del sys.modules[name]
        ScriptedLoadableModuleWidget.onReload(self)

    def onSceneImported(self, caller=None, event=None):
        """Read the loaded scene's parameters once every selector has caught up with the scene; until then
        their changes must not overwrite them."""
        self.reading = True
        qt.QTimer.singleShot(0, self.readParameters)

    def onSceneEndClose(self, caller=None, event=None):
        self.onCancel()
        self.lastOutput = None
        self.showResult(None)
        self.hideOwnOutputs()
        self.updateButtons()

    # --- settings and the parameter node -------------------------------------------------------------
    def restoreSettings(self):
        settings = qt.QSettings()
        stored = panel.Settings.load(lambda key: settings.value(key) if settings.contains(key) else None)
        demo = default_bundle_path()
        self.ui.bundlePathLineEdit.currentPath = stored.BundlePath or (str(demo) if demo is not None else "")
        self.fillDevices(stored.Device)
        self.ui.patchCountSpinBox.value = stored.PatchCount
        self.ui.patchClassComboBox.currentIndex = max(0, self.ui.patchClassComboBox.findText(stored.PatchClass))
        self.ui.attentionCheckBox.checked = stored.ShowAttention
        self.ui.opacitySlider.value = stored.Opacity

    def saveSettings(self, *unused):
        if self.reading:
            return
        current = panel.Settings(self.ui.bundlePathLineEdit.currentPath, self.device(), self.ui.patchCountSpinBox.value,
                                 self.ui.patchClassComboBox.currentText, self.ui.attentionCheckBox.checked, self.ui.opacitySlider.value)
        settings = qt.QSettings()
        for key, value in current.items().items():
            settings.setValue(key, value)
        self.writeParameters()

    def readParameters(self, *unused):
        """This scene's inputs, bundle and device (a scene saved with them, or loaded later)."""
        stored = panel.read_parameters(self.logic.getParameterNode())
        self.reading = True
        try:
            self.hideOwnOutputs()
            if stored["Bundle"]:
                self.ui.bundlePathLineEdit.currentPath = stored["Bundle"]
            if stored["Device"]:
                self.fillDevices(stored["Device"])
            for selector, role in ((self.ui.inputVolumeSelector, "InputVolume"), (self.ui.tumourSelector, "Tumour")):
                if stored[role] is not None:
                    selector.setCurrentNode(stored[role])
            self.fillSegments()
            segment = self.ui.tumourSegmentComboBox.findData(stored["TumourSegment"])
            if segment >= 0:
                self.ui.tumourSegmentComboBox.currentIndex = segment
        finally:
            self.reading = False

    def writeParameters(self, *unused):
        if not self.reading and not slicer.mrmlScene.IsImporting():  # a scene being loaded sets them itself
            panel.write_parameters(self.logic.getParameterNode(), *self.inputs(), self.ui.bundlePathLineEdit.currentPath, self.device())

    # --- inputs ----------------------------------------------------------------------------------
    def bundle(self):
        return self.ui.bundlePathLineEdit.currentPath or None

    def device(self) -> str:
        combo = self.ui.deviceComboBox
        return combo.itemData(combo.currentIndex) or "auto"

    def fillDevices(self, device):
        combo = self.ui.deviceComboBox
        combo.blockSignals(True)
        combo.clear()
        for label, name in panel.device_choices(self.devices, device):
            combo.addItem(label, name)
        combo.currentIndex = max(0, combo.findData(device))
        combo.blockSignals(False)

    def startDeviceProbe(self):
        """Ask PyTorch which GPUs there are, in a background process (the list fills when it answers)."""
        from NeoNetSlicerLib import devices

        self.devices = devices.known()
        if self.devices is not None:
            self.fillDevices(self.device())
            self.startWarmWorker()
        elif self.blocked is None:
            self.probe = devices.start_probe()
            self.timer.start()

    def pollProbe(self):
        from NeoNetSlicerLib.devices import probe_result

        if self.probe is not None and not self.probe.finished:
            self.probe.poll()
            if self.probe.finished:
                self.devices = probe_result(self.probe)
                self.fillDevices(self.device())
                if self.devices is not None:
                    self.startWarmWorker()

    def startWarmWorker(self):
        """PyTorch is there: start the process that runs the jobs now, so a click does not wait for imports."""
        from NeoNetSlicerLib.worker import shared_worker

        self.logic.warm_worker = shared_worker().start()

    def onInputChanged(self, *unused):
        self.writeParameters()
        self.updateButtons()

    def onBundleChanged(self, path):
        self.saveSettings()
        self.cardTimer.start()  # restarted by every keystroke: the card loads once typing pauses

    def updateModelCard(self):
        self.ui.modelCardTextBrowser.setPlainText(model_card_text(self.bundle()))

    def onTumourChanged(self, *unused):
        self.fillSegments()
        self.onInputChanged()

    def fillSegments(self):
        """List the segments of a multi-segment tumour segmentation, so one of them can be the tumour."""
        choices, preselected = nodes.segment_choices(self.ui.tumourSelector.currentNode())
        combo = self.ui.tumourSegmentComboBox
        combo.clear()
        for name, segment_id in choices:
            combo.addItem(name, segment_id)
        combo.currentIndex = preselected
        for widget in (combo, self.ui.tumourSegmentLabel):
            widget.visible = bool(choices)

    def inputs(self):
        """(volume node, tumour node or None, segment ID or None)."""
        tumour, combo = self.ui.tumourSelector.currentNode(), self.ui.tumourSegmentComboBox
        segment = combo.itemData(combo.currentIndex) if combo.count else None
        return self.ui.inputVolumeSelector.currentNode(), tumour, segment

    def hideOwnOutputs(self, *unused):
        """NeoNet's own volumes (attention maps, patches) are not inputs."""
        if not slicer.mrmlScene.IsImporting():  # a scene being loaded: once, when it is in
            self.ui.inputVolumeSelector.sortFilterProxyModel().hiddenNodeIDs = nodes.own_output_ids(slicer.mrmlScene)

    def updateButtons(self, *unused):
        states = panel.button_states(self.job is not None or self.installing, self.ui.inputVolumeSelector.currentNode() is not None,
                                     self.lastOutput is not None, self.blocked)
        for name, enabled in states.items():
            getattr(self.ui, name + "Button").enabled = enabled

    # --- jobs --------------------------------------------------------------------------------------
    def ensureDependencies(self) -> bool:
        """One question for every missing package; a wait cursor and disabled buttons while pip runs."""
        from NeoNetSlicerLib import dependencies

        self.installing = True
        self.updateButtons()
        try:
            return dependencies.ensure(lambda message: slicer.util.confirmOkCancelDisplay(message, "NeoNet: install Python packages"),
                                       busy=slicer.util.WaitCursor)
        except Exception as err:
            slicer.util.errorDisplay(f"Installing NeoNet's Python packages failed: {err}")
            return False
        finally:
            self.installing = False
            self.updateButtons()

    def startJob(self, make_job, what: str):
        if not self.ensureDependencies():
            self.setStatus("Python packages not installed; nothing was run.")
            return
        if self.devices is None and (self.probe is None or self.probe.finished):
            self.startDeviceProbe()  # the packages may be new
        device = panel.resolve_auto(self.device(), self.devices)
        try:
            self.job = make_job(device)
        except Exception as err:
            logging.exception("NeoNet: could not start %s", what)
            self.setStatus(f"{what} failed: {err}", error=True)
            return
        self.lastJob, self.jobWhat = self.job, what
        self.ui.progressBar.setRange(0, 0)  # busy until the CLI reports a fraction
        self.setStatus(f"{what}: starting on {panel.device_label(device, self.devices)}")
        self.updateButtons()
        self.timer.start()

    def onLocalize(self):
        volume = self.inputs()[0]
        self.startJob(lambda device: self.logic.start_localize(volume, self.bundle(), device), "Localize")

    def onGenerate(self):
        volume, tumour, _ = self.inputs()
        label, count = int(self.ui.patchClassComboBox.currentText == "PNI+"), self.ui.patchCountSpinBox.value
        self.startJob(lambda device: self.logic.start_generate(volume, tumour, self.bundle(), count, label, device), "Generate")

    def onPredict(self):
        volume, tumour, segment = self.inputs()
        self.startJob(lambda device: self.logic.start_predict(volume, tumour, self.bundle(), device, segmentId=segment), "Predict")

    def onCancel(self):
        if self.job is not None:
            self.job.cancel()
            self.onTimer()

    def onTimer(self):
        self.pollProbe()
        if self.job is None:
            if self.probe is None or self.probe.finished:
                self.timer.stop()
            return
        for event in self.job.poll():
            self.onEvent(event)
        if self.job.done:
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
        self.ui.progressBar.value = 0 if job.error else 100
        text, level = panel.job_status(job, self.jobWhat, self.devices)
        self.setStatus(text, warning=level == "warning", error=level == "error")
        if job.error is None and job.name == "generate":
            self.ui.patchSeekWidget.setMRMLSequenceBrowserNode(job.result[1])
        elif job.error is None and job.name == "predict":
            job.result.device = job.current_device
            self.lastOutput = job.result
            self.showResult(job.result)
            self.onOverlayChanged()
        self.hideOwnOutputs()  # e.g. the patch browser's proxies, marked after the Sequences logic made them
        self.updateButtons()

    # --- the result --------------------------------------------------------------------------------
    def showResult(self, out):
        explanation = out.explanation() if out is not None else None
        self.ui.probabilityLabel.text = "–" if out is None else f"{out.probability:.2f}"
        self.ui.labelLabel.text = "–" if out is None else out.label if explanation.assessable else f"({out.label})"
        self.ui.uncertaintyLabel.text = "–" if out is None or out.uncertainty is None else f"±{out.uncertainty:.2f}"
        self.ui.explanationLabel.text = panel.NOT_CLINICAL if out is None else explanation.text()
        flagged = explanation is not None and (explanation.borderline or not explanation.assessable)
        self.ui.explanationLabel.setStyleSheet("color: #d35400; font-weight: bold;" if flagged else "")

    def onOverlayChanged(self, *unused):
        self.saveSettings()
        volume = self.ui.inputVolumeSelector.currentNode()
        if volume is not None:
            self.logic.set_attention_visible(volume, self.ui.attentionCheckBox.checked, self.ui.opacitySlider.value / 100.0)

    def onCentre(self):
        volume = self.ui.inputVolumeSelector.currentNode()
        if volume is not None and self.logic.centre_on_roi(volume) is None:
            self.setStatus("No TLCR box for this volume yet: run Localize or Predict.", warning=True)

    def onTable(self):
        self.logic.show_results_table()

    def onExport(self):
        folder = self.ui.exportPathLineEdit.currentPath
        if not folder:
            self.setStatus("Choose a folder to save the outputs in.", warning=True)
            return
        try:
            files = self.logic.save_outputs(self.lastOutput, folder)
        except (OSError, ValueError) as err:
            self.setStatus(f"Saving failed: {err}", error=True)
            return
        self.setStatus(f"Saved {len(files)} files in {folder}: " + ", ".join(p.name for p in files.values()))

    def onShowLog(self):
        self.ui.logTextEdit.setPlainText(self.lastJob.log_text() if self.lastJob is not None else "No job has run yet.")
        self.ui.logCollapsibleButton.collapsed = False

    def setStatus(self, text, warning=False, error=False):
        self.ui.statusLabel.text = text
        color = "#c0392b" if error else "#d35400" if warning else ""
        self.ui.statusLabel.setStyleSheet(f"color: {color}; font-weight: bold;" if color else "")


# --- self-test (inside Slicer: Developer mode -> Reload and Test; the extension's CTest) -------------
class NeoNetSlicerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_geometry_round_trip()
        self.setUp()
        self.test_predict_on_sample_data()

    def test_geometry_round_trip(self):
        from NeoNetSlicerLib import selftest

        selftest.geometry_round_trip(slicer.mrmlScene, self.delayDisplay)

    def test_predict_on_sample_data(self):
        from NeoNetSlicerLib import selftest

        selftest.predict_on_sample_data(NeoNetSlicerLogic(), self.delayDisplay)
