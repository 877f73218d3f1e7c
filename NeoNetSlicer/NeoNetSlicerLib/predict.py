"""Predict PNI for a volume node, in this process or in a background ``neonet predict`` job: the
probability, NeoNet's tumour, TLCR ROI and attention nodes (with a colour legend), a row of the results
table, and the views: overlay opacity, slices centred on the ROI, the table shown. No Qt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from neonet_core.volume import Volume

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.base import LogicBase, read_on_grid
from NeoNetSlicerLib.jobs import Job

RESULTS_TABLE_NAME = "NeoNet results"


@dataclass
class PredictionOutput:
    """What :meth:`PredictLogic.predict` made: the numbers and the output nodes (all NeoNet's own)."""

    case_id: str
    probability: float
    label: str
    threshold: float
    uncertainty: float | None
    tumour_source: str
    bundle_name: str
    bundle_version: str
    not_assessable_reasons: list = field(default_factory=list)  # empty: the scan could be assessed
    device: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    tumourNode: object = None
    roiNode: object = None
    attentionNode: object = None
    tableNode: object = None
    prediction: object = None

    def summary(self) -> str:
        unc = "" if self.uncertainty is None else f" ± {self.uncertainty:.3f}"
        return f"{self.case_id}: p(PNI) = {self.probability:.3f}{unc} -> {self.label} (threshold {self.threshold:.2f})"

    def explanation(self):
        """The result in words (:func:`NeoNetSlicerLib.panel.explain`)."""
        from NeoNetSlicerLib.panel import explain

        return explain(self.probability, self.threshold, self.label, self.uncertainty,
                       not self.not_assessable_reasons, self.not_assessable_reasons)


def _label_name(label, class_names) -> str:
    if isinstance(label, str):
        return label
    names = list(class_names or [])
    return names[int(label)] if 0 <= int(label) < len(names) else str(int(label))


class PredictLogic(LogicBase):
    """Predict PNI and show the result on the scene."""

    def predictor(self, bundle=None, device: str = "auto"):
        """The library's loaded :class:`neonet_core.predict.Predictor` for ``bundle`` on ``device`` (cached by the library)."""
        from neonet_core.predict import load_predictor

        return load_predictor(self.resolve_bundle(bundle), device)

    def predict(self, volumeNode, segmentationNode=None, bundle=None, device: str = "auto", tta: bool = True,
                segmentId: str | None = None, caseId: str | None = None) -> PredictionOutput:
        """Predict PNI for ``volumeNode`` (+ optional tumour ``segmentationNode``; None = NeoSeg finds it).

        Creates or updates NeoNet's output nodes for this volume (tumour segmentation, TLCR ROI,
        attention map overlay, a row of the results table); never modifies the input nodes.
        Timings (s): ``mrml_in`` (nodes -> Volumes), ``load`` (bundle, cached after the first call),
        ``predict_<stage>`` (the library's stages), ``predict`` (all of them), ``mrml_out`` (output
        nodes), ``total``.
        """
        start = time.perf_counter()
        image = self.image_from_node(volumeNode)
        tumour = self.tumour_from_node(segmentationNode, volumeNode, image, segmentId)
        mrml_in = time.perf_counter() - start
        t = time.perf_counter()
        predictor = self.predictor(bundle, device)
        load = time.perf_counter() - t
        t = time.perf_counter()
        prediction = predictor.predict(image, tumour, tta=tta)
        library = time.perf_counter() - t
        t = time.perf_counter()
        out = self.show_prediction(prediction, volumeNode, caseId or volumeNode.GetName(), segmentationNode)
        out.device = str(predictor.device)
        mrml_out = time.perf_counter() - t
        stages = {f"predict_{k}": float(v) for k, v in (prediction.timings or {}).items() if k != "total"}
        timings = {"mrml_in": mrml_in, "load": load, **stages, "predict": library, "mrml_out": mrml_out}
        timings["total"] = time.perf_counter() - start
        out.timings = timings
        self._write_table_row(out)
        return out

    def show_prediction(self, prediction, volumeNode, case_id: str, tumourNode=None) -> PredictionOutput:
        """Put a :class:`neonet_core.predict.Prediction` into NeoNet's output nodes for ``volumeNode``.

        ``tumourNode``: the segmentation the tumour came from; NeoNet's own tumour node is kept as it is.
        """
        if self.is_own_tumour(tumourNode, volumeNode):
            tumour_node = tumourNode
        else:
            tumour_node = self.set_tumour(volumeNode, prediction.tumour, prediction.tumour_source)
        roi_node = self.set_roi(volumeNode, prediction.roi)
        attention_node = nodes.output_node(self.scene, "vtkMRMLScalarVolumeNode", "attention", volumeNode.GetID(), f"{volumeNode.GetName()} NeoNet attention")
        nodes.set_attention(attention_node, prediction.attention, self.scene)
        self._add_legend(attention_node)
        nodes.show_foreground(self.scene, attention_node, volumeNode)
        uncertainty = getattr(prediction, "uncertainty", None)
        return PredictionOutput(
            case_id=case_id,
            probability=float(prediction.probability),
            label=_label_name(prediction.label, getattr(prediction, "class_names", None)),
            threshold=float(prediction.threshold),
            uncertainty=None if uncertainty is None else float(uncertainty),
            tumour_source=str(prediction.tumour_source),
            bundle_name=str(getattr(prediction, "bundle_name", "")),
            bundle_version=str(getattr(prediction, "bundle_version", "")),
            not_assessable_reasons=[str(r) for r in getattr(prediction, "not_assessable_reasons", None) or []],
            tumourNode=tumour_node,
            roiNode=roi_node,
            attentionNode=attention_node,
            prediction=prediction,
        )

    def _add_legend(self, attention_node) -> None:
        """A colour legend for the attention map in the views (Slicer's Colors logic), once."""
        colors = self.app_logic.GetModuleLogic("Colors") if self.app_logic is not None else None
        if colors is not None and colors.GetColorLegendDisplayNode(attention_node) is None:
            legend = colors.AddDefaultColorLegendDisplayNode(attention_node)
            legend.SetTitleText("NeoNet attention")

    def start_predict(self, volumeNode, segmentationNode=None, bundle=None, device: str = "auto", tta: bool = True,
                      segmentId: str | None = None, caseId: str | None = None) -> Job:
        """:meth:`predict` in a background ``neonet predict`` process; poll or wait the returned job.

        The job's result is the same :class:`PredictionOutput` (same output nodes, same table row).
        """
        image = self.image_from_node(volumeNode)
        tumour = self.tumour_from_node(segmentationNode, volumeNode, image, segmentId)
        bundle_path = self.resolve_bundle(bundle)
        work = self._job_folder(image=image, tumour=tumour)
        arguments = ["predict", "--bundle", bundle_path, "--image", work / "image.nrrd", "--out", work / "out"]
        if tumour is not None:
            arguments += ["--mask", work / "tumour.nrrd"]
        if not tta:
            arguments.append("--no-tta")
        case_id = caseId or volumeNode.GetName()

        def load(workdir: Path) -> PredictionOutput:
            prediction = read_prediction(workdir / "out", image, tumour)
            out = self.show_prediction(prediction, volumeNode, case_id, segmentationNode)
            names = {"load": "load", "total": "predict"}
            out.timings = {names.get(k, f"predict_{k}"): float(v) for k, v in prediction.timings.items()}
            self._write_table_row(out)
            return out

        return self._start_job("predict", arguments, device, load, work)

    # --- results table and overlay -------------------------------------------------------------------
    def results_table(self):
        """The results table node (one row per case; a re-run replaces its case's row)."""
        return nodes.output_node(self.scene, "vtkMRMLTableNode", "results", None, RESULTS_TABLE_NAME)

    def _write_table_row(self, out: PredictionOutput) -> None:
        table = self.results_table()
        row = {
            "case": out.case_id,
            "probability": out.probability,
            "label": out.label,
            "threshold": out.threshold,
            "uncertainty": out.uncertainty,
            "tumour_source": out.tumour_source,
            "assessable": "yes" if not out.not_assessable_reasons else "no: " + "; ".join(out.not_assessable_reasons),
            "bundle": out.bundle_name,
            "bundle_version": out.bundle_version,
            **{f"time_{k}_s": round(v, 4) for k, v in out.timings.items()},
        }
        nodes.set_table_row(table, "case", row)
        out.tableNode = table

    def set_attention_visible(self, volumeNode, visible: bool, opacity: float = 0.5) -> bool:
        """Show or hide ``volumeNode``'s attention map as the foreground overlay (at ``opacity``) in the
        views that show ``volumeNode``; False when there is no attention map."""
        attention = nodes.find_output(self.scene, "vtkMRMLScalarVolumeNode", "attention", volumeNode.GetID())
        if attention is None:
            return False
        nodes.show_foreground(self.scene, attention if visible else None, None, opacity, showing=volumeNode)
        return True

    def centre_on_roi(self, volumeNode):
        """Centre every slice view on ``volumeNode``'s TLCR box; its RAS centre, or None without one."""
        roi = nodes.find_output(self.scene, "vtkMRMLMarkupsROINode", "roi", volumeNode.GetID())
        if roi is None:
            return None
        centre = [0.0, 0.0, 0.0]
        roi.GetCenterWorld(centre)
        self.slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, *centre, self.slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return centre

    def show_results_table(self) -> bool:
        """Make the results table the active table and switch to a layout with a table view (False without one)."""
        table = nodes.find_output(self.scene, "vtkMRMLTableNode", "results", None)
        app = self.app_logic
        if table is None or app is None:
            return False
        app.GetSelectionNode().SetActiveTableID(table.GetID())
        app.PropagateTableSelection()
        layout = self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:
            layout.SetViewArrangement(layout.SlicerLayoutFourUpTableView)
        return True


def read_prediction(folder: Path, image: Volume, tumour: Volume | None):
    """The :class:`neonet_core.predict.Prediction` that ``neonet predict --out folder`` wrote for ``image``.

    ``tumour``: the mask that was given with ``--mask`` (None: NeoSeg's ``tumour.nii.gz`` is read).
    Output volumes are put back on ``image``'s grid (the files hold its geometry already).
    """
    import json

    from neonet_core.predict import Prediction
    from neonet_core.tlcr import ROI

    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    prediction = Prediction(
        probability=float(result["probability"]),
        label=int(result["label"]),
        threshold=float(result["threshold"]),
        uncertainty=float(result["uncertainty"]),
        roi=ROI.from_dict(result["roi"]),
        attention=read_on_grid(folder / "attention.nii.gz", image),
        tumour=tumour if tumour is not None else read_on_grid(folder / "tumour.nii.gz", image),
        tumour_source=str(result["tumour_source"]),
        timings={k: float(v) for k, v in result.get("timings_s", {}).items()},
        bundle_name=str(result.get("bundle_name", "")),
        bundle_version=str(result.get("bundle_version", "")),
        class_names=list(result.get("class_names", ["PNI-", "PNI+"])),
    )
    prediction.not_assessable_reasons = list(result.get("not_assessable_reasons") or [])  # written by newer CLIs
    return prediction
