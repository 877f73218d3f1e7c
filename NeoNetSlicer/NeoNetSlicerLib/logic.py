"""NeoNet on an MRML scene, without Qt: user nodes in, new (or updated) NeoNet output nodes out.

Console use (in Slicer)::

    logic = slicer.util.getModuleLogic("NeoNetSlicer")
    out = logic.predict(volumeNode, segmentationNode=None, bundle="/path/to/bundle", device="auto")
    out.probability, out.label, out.attentionNode, out.roiNode, out.tumourNode, out.tableNode

Outside Slicer (tests, batch): ``NeoNetLogic(scene, app_logic)`` on a scene from the slicer-core wheel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neonet_core.volume import Volume

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import volume_from_node
from NeoNetSlicerLib.jobs import Job, new_workdir
from NeoNetSlicerLib.runner import cli_command

DEMO_BUNDLE_NAME = "neonet-demo"
RESULTS_TABLE_NAME = "NeoNet results"


def default_bundle_path() -> Path | None:
    """The demo bundle shipped with the extension (``Resources/Models/neonet-demo``), or None when absent."""
    here = Path(__file__).resolve().parent  # .../NeoNetSlicerLib
    for root in (here.parent, here.parent.parent):  # installed module folder, then the source tree
        candidate = root / "Resources" / "Models" / DEMO_BUNDLE_NAME
        if (candidate / "bundle.json").is_file():
            return candidate
    return None


def model_card_text(bundle=None) -> str:
    """A short Markdown model card for ``bundle`` (None: the demo bundle), or why there is none."""
    try:
        path = NeoNetLogic.resolve_bundle(bundle)
    except ValueError as err:
        return f"**No model bundle.** {err}"
    from neonet_core.bundle import load_bundle
    from neonet_core.errors import NeoNetError

    try:
        info = load_bundle(path).info
    except (NeoNetError, OSError) as err:
        return f"**Not a usable bundle:** {err}"
    except ImportError as err:  # torch not installed yet
        return f"**{path.name}** (details after the Python packages are installed: {err})"
    card = info.get("model_card") or {}
    if isinstance(card, str):
        card = {"description": card}
    lines = [f"**{info.get('name') or card.get('name') or path.name}** {info.get('version') or card.get('version') or ''}".rstrip()]
    for key in ("description", "intended_use", "training_data", "limitations"):
        if card.get(key):
            lines.append(f"- {key.replace('_', ' ')}: {card[key]}")
    cohort = info.get("cohort") or {}
    if cohort:
        lines.append("- cohort: " + ", ".join(f"{k} {v}" for k, v in cohort.items() if not isinstance(v, (dict, list))))
    metrics = info.get("metrics") or {}
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    if flat:
        lines.append("- metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in flat.items()))
    if "threshold" in info:
        lines.append(f"- decision threshold: {float(info['threshold']):.3f}")
    lines.append(f"- networks: {', '.join(sorted(info.get('networks', {}))) or 'none'}")
    return "\n".join(lines)


@dataclass
class PredictionOutput:
    """What :meth:`NeoNetLogic.predict` made: the numbers and the output nodes (all NeoNet's own)."""

    case_id: str
    probability: float
    label: str
    threshold: float
    uncertainty: float | None
    tumour_source: str
    bundle_name: str
    bundle_version: str
    timings: dict[str, float] = field(default_factory=dict)
    tumourNode: object = None
    roiNode: object = None
    attentionNode: object = None
    tableNode: object = None
    prediction: object = None

    def summary(self) -> str:
        unc = "" if self.uncertainty is None else f" ± {self.uncertainty:.3f}"
        return f"{self.case_id}: p(PNI) = {self.probability:.3f}{unc} -> {self.label} (threshold {self.threshold:.2f})"


def _label_name(label, class_names) -> str:
    if isinstance(label, str):
        return label
    names = list(class_names or [])
    return names[int(label)] if 0 <= int(label) < len(names) else str(int(label))


class NeoNetLogic:
    """Qt-free NeoNet logic on an MRML scene.

    scene: the MRML scene (default ``slicer.mrmlScene``). app_logic: the application logic that holds
    the module logics (default ``slicer.app.applicationLogic()`` inside Slicer); only the Sequences
    logic is taken from it (to create the patch browser's proxy node).
    """

    def __init__(self, scene=None, app_logic=None):
        import slicer

        self._scene = scene
        self._app_logic = app_logic
        self._segmenters: dict[tuple[str, str], object] = {}
        self.slicer = slicer
        self.cli_command = cli_command  # arguments -> argv of the background process (the neonet CLI)

    # --- context -------------------------------------------------------------------------------
    @property
    def scene(self):
        return self._scene if self._scene is not None else self.slicer.mrmlScene

    @property
    def app_logic(self):
        if self._app_logic is not None:
            return self._app_logic
        app = getattr(self.slicer, "app", None)
        return app.applicationLogic() if app is not None else None

    # --- inputs (read only) --------------------------------------------------------------------
    def image_from_node(self, volume_node) -> Volume:
        """The user's volume as a :class:`Volume` (a copy: the node is never changed)."""
        if volume_node is None or not volume_node.IsA("vtkMRMLScalarVolumeNode"):
            raise ValueError("choose a scalar MRI volume node as input")
        image = volume_from_node(volume_node, copy=True)
        image.metadata["path"] = volume_node.GetName()
        return image

    def tumour_from_node(self, segmentation_node, volume_node, image: Volume, segment_id: str | None = None) -> Volume | None:
        """The user's tumour (segmentation or labelmap node) as a 0/1 mask on ``image``'s grid, or None."""
        if segmentation_node is None:
            return None
        if segmentation_node.IsA("vtkMRMLSegmentationNode"):
            return nodes.mask_from_segmentation(segmentation_node, volume_node, image, segment_id)
        if segmentation_node.IsA("vtkMRMLLabelMapVolumeNode"):
            from neonet_core.resample import resample_volume

            mask = volume_from_node(segmentation_node)
            mask = mask.with_array((mask.array != 0).astype(np.uint8))
            return image.with_array(mask.array) if mask.same_grid(image) else image.with_array(resample_volume(mask, image, "nearest", 0).array)
        raise ValueError(f"{segmentation_node.GetName()!r} is neither a segmentation nor a labelmap node")

    # --- model loading (the library caches loaded networks per bundle and device) ------------------
    def predictor(self, bundle=None, device: str = "auto"):
        """The library's loaded :class:`neonet_core.predict.Predictor` for ``bundle`` on ``device``."""
        from neonet_core.predict import load_predictor

        return load_predictor(self.resolve_bundle(bundle), device)

    @staticmethod
    def resolve_bundle(bundle) -> Path:
        """``bundle`` (path, or None for the demo bundle) as a Path; ValueError when there is none."""
        if bundle in (None, ""):
            bundle = default_bundle_path()
            if bundle is None:
                raise ValueError("no model bundle given and the demo bundle (Resources/Models/neonet-demo) is not installed")
        return Path(bundle)

    # --- predict ---------------------------------------------------------------------------------
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
        out = self.show_prediction(prediction, volumeNode, caseId or volumeNode.GetName())
        mrml_out = time.perf_counter() - t
        stages = {f"predict_{k}": float(v) for k, v in (prediction.timings or {}).items() if k != "total"}
        timings = {"mrml_in": mrml_in, "load": load, **stages, "predict": library, "mrml_out": mrml_out}
        timings["total"] = time.perf_counter() - start
        out.timings = timings
        self._write_table_row(out)
        return out

    def show_prediction(self, prediction, volumeNode, case_id: str) -> PredictionOutput:
        """Put a :class:`neonet_core.predict.Prediction` into NeoNet's output nodes for ``volumeNode``."""
        input_id = volumeNode.GetID()
        name = volumeNode.GetName()
        tumour_node = self.tumour_node(volumeNode)
        nodes.set_segment(tumour_node, prediction.tumour, volumeNode, "tumour (NeoSeg)" if prediction.tumour_source == "neoseg" else "tumour")
        roi_node = nodes.output_node(self.scene, "vtkMRMLMarkupsROINode", "roi", input_id, f"{name} TLCR")
        nodes.set_roi(roi_node, prediction.roi)
        attention_node = nodes.output_node(self.scene, "vtkMRMLScalarVolumeNode", "attention", input_id, f"{name} NeoNet attention")
        nodes.set_attention(attention_node, prediction.attention, self.scene)
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
            tumourNode=tumour_node,
            roiNode=roi_node,
            attentionNode=attention_node,
            prediction=prediction,
        )

    def start_predict(self, volumeNode, segmentationNode=None, bundle=None, device: str = "auto", tta: bool = True,
                      segmentId: str | None = None, caseId: str | None = None) -> Job:
        """:meth:`predict` in a background ``neonet predict`` process; poll or wait the returned job.

        The job's result is the same :class:`PredictionOutput` (same output nodes, same table row).
        """
        from neonet_core.io import write_volume

        image = self.image_from_node(volumeNode)
        tumour = self.tumour_from_node(segmentationNode, volumeNode, image, segmentId)
        bundle_path = self.resolve_bundle(bundle)
        work = new_workdir()
        write_volume(image, work / "image.nrrd")
        arguments = ["predict", "--bundle", bundle_path, "--image", work / "image.nrrd", "--out", work / "out"]
        if tumour is not None:
            write_volume(tumour, work / "tumour.nrrd")
            arguments += ["--mask", work / "tumour.nrrd"]
        if not tta:
            arguments.append("--no-tta")
        case_id = caseId or volumeNode.GetName()

        def load(workdir: Path) -> PredictionOutput:
            prediction = read_prediction(workdir / "out", image, tumour)
            out = self.show_prediction(prediction, volumeNode, case_id)
            names = {"load": "load", "total": "predict"}
            out.timings = {names.get(k, f"predict_{k}"): float(v) for k, v in prediction.timings.items()}
            self._write_table_row(out)
            return out

        return Job("predict", arguments, device, load, work, command=self.cli_command).start()

    def tumour_node(self, volumeNode):
        """NeoNet's tumour segmentation node for ``volumeNode`` (created when missing)."""
        return nodes.output_node(self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID(), f"{volumeNode.GetName()} NeoNet tumour")

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
            "bundle": out.bundle_name,
            "bundle_version": out.bundle_version,
            **{f"time_{k}_s": round(v, 4) for k, v in out.timings.items()},
        }
        nodes.set_table_row(table, "case", row)
        out.tableNode = table

    def set_attention_visible(self, volumeNode, visible: bool, opacity: float = 0.5) -> bool:
        """Show or hide ``volumeNode``'s attention map as the foreground overlay; False when there is none."""
        attention = nodes.find_output(self.scene, "vtkMRMLScalarVolumeNode", "attention", volumeNode.GetID())
        if attention is None:
            return False
        nodes.show_foreground(self.scene, attention if visible else None, volumeNode, opacity)
        return True

    # --- localise (NeoSeg only) --------------------------------------------------------------------
    def segmenter(self, bundle, device: str = "auto"):
        from neonet_core.neoseg.infer import load_segmenter

        path = self.resolve_bundle(bundle)
        key = (str(path), device)
        if key not in self._segmenters:
            self._segmenters = {key: load_segmenter(path, device)}
        return self._segmenters[key]

    def localize(self, volumeNode, bundle=None, device: str = "auto"):
        """Find the tumour with NeoSeg: returns ``(tumour segmentation node, TLCR ROI node, volume ml)``."""
        from neonet_core.errors import NoTumourFoundError

        image = self.image_from_node(volumeNode)
        result = self.segmenter(bundle, device).segment(image)
        if not result.found:
            raise NoTumourFoundError(f"NeoSeg found no tumour in {volumeNode.GetName()!r}")
        return self.show_tumour(volumeNode, image, image.with_array(result.mask.array), bundle)

    def show_tumour(self, volumeNode, image: Volume, mask: Volume, bundle=None, source: str = "neoseg"):
        """NeoNet's tumour segment and TLCR ROI for ``mask`` (on ``image``'s grid): ``(seg node, ROI node, ml)``."""
        from neonet_core.tlcr import tumour_roi

        tumour_node = self.tumour_node(volumeNode)
        nodes.set_segment(tumour_node, mask, volumeNode, "tumour (NeoSeg)" if source == "neoseg" else "tumour")
        preprocess = self.preprocess_config(bundle)
        roi_node = nodes.output_node(self.scene, "vtkMRMLMarkupsROINode", "roi", volumeNode.GetID(), f"{volumeNode.GetName()} TLCR")
        nodes.set_roi(roi_node, tumour_roi(image, mask, preprocess.roi_mm, preprocess.component))
        ml = float(np.count_nonzero(mask.array) * np.prod(image.spacing) / 1000.0)
        return tumour_node, roi_node, ml

    def start_localize(self, volumeNode, bundle=None, device: str = "auto") -> Job:
        """:meth:`localize` in a background ``neonet segment`` process; poll or wait the returned job."""
        from neonet_core.io import read_volume, write_volume

        image = self.image_from_node(volumeNode)
        bundle_path = self.resolve_bundle(bundle)
        work = new_workdir()
        write_volume(image, work / "image.nrrd")
        arguments = ["segment", "--bundle", bundle_path, "--image", work / "image.nrrd", "--out", work / "tumour.nrrd"]

        def load(workdir: Path):
            mask = read_volume(workdir / "tumour.nrrd")
            return self.show_tumour(volumeNode, image, image.with_array(mask.array.astype(np.uint8)), bundle_path)

        return Job("localize", arguments, device, load, work, command=self.cli_command).start()

    def preprocess_config(self, bundle=None):
        """The bundle's PreprocessConfig (TLCR size, patch size, normalisation), the library default without a bundle."""
        from neonet_core.config import NeoNetConfig, PreprocessConfig

        try:
            path = self.resolve_bundle(bundle)
        except ValueError:
            return PreprocessConfig()
        from neonet_core.bundle import load_bundle

        config = load_bundle(path).info.get("config") or {}
        return NeoNetConfig.from_dict(config).preprocess if config else PreprocessConfig()

    # --- synthetic patches ------------------------------------------------------------------------
    def show_patches(self, volumeNode, patches: list[Volume], real_patch: Volume | None = None, name: str = "synthetic"):
        """Load ``patches`` as a volume sequence with a browser (and ``real_patch`` as a volume beside it).

        Returns ``(sequence node, browser node, proxy volume node, real patch node or None)``.
        """
        input_id = volumeNode.GetID() if volumeNode is not None else None
        base = volumeNode.GetName() if volumeNode is not None else "NeoNet"
        sequence = nodes.output_node(self.scene, "vtkMRMLSequenceNode", f"patches:{name}", input_id, f"{base} {name} patches")
        nodes.set_volume_sequence(sequence, patches)
        browser = nodes.output_node(self.scene, "vtkMRMLSequenceBrowserNode", f"browser:{name}", input_id, f"{base} {name} patches browser")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        browser.SetSelectedItemNumber(0)
        proxy = self._update_proxies(browser, sequence)
        real_node = None
        if real_patch is not None:
            real_node = nodes.output_node(self.scene, "vtkMRMLScalarVolumeNode", "real_patch", input_id, f"{base} real patch")
            from NeoNetSlicerLib.geometry import update_node_from_volume

            update_node_from_volume(real_node, real_patch)
        return sequence, browser, proxy, real_node

    def _update_proxies(self, browser, sequence):
        app = self.app_logic
        sequences_logic = app.GetModuleLogic("Sequences") if app is not None else None
        if sequences_logic is not None:
            sequences_logic.UpdateProxyNodesFromSequences(browser)
        return browser.GetProxyNode(sequence)

    def select_patch(self, browser, index: int):
        """Show patch ``index`` of ``browser``'s sequence in its proxy node."""
        browser.SetSelectedItemNumber(int(index))
        return self._update_proxies(browser, browser.GetMasterSequenceNode())

    def generation_tumour(self, volumeNode, segmentationNode, image: Volume) -> Volume:
        """The tumour that conditions generation: the user's segmentation, else NeoNet's own (Localize first)."""
        if segmentationNode is None:
            segmentationNode = nodes.find_output(self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID())
            if segmentationNode is None:
                raise ValueError(f"no tumour for {volumeNode.GetName()!r}: choose a tumour segmentation or click Localize first")
        return self.tumour_from_node(segmentationNode, volumeNode, image)

    def real_patch(self, image: Volume, tumour: Volume, bundle=None) -> Volume:
        """The case's own TLCR patch, normalised like NeoGen's output (0..1), on the patch grid."""
        from neonet_core.normalize import normalise_from_config
        from neonet_core.tlcr import tlcr_from_config

        preprocess = self.preprocess_config(bundle)
        crop = tlcr_from_config(image, tumour, None, preprocess)
        return normalise_from_config(crop.image_patch, preprocess)

    def generate(self, volumeNode, segmentationNode=None, bundle=None, count: int = 4, label: int = 1,
                 device: str = "auto", seed: int = 0, steps: int | None = None):
        """NeoGen patches of class ``label`` conditioned on this case's tumour, loaded as a browsable sequence.

        Returns ``(sequence node, browser node, proxy volume node, real patch node)``.
        """
        from neonet_core.neogen.generate import generate_patches, load_neogen

        image = self.image_from_node(volumeNode)
        tumour = self.generation_tumour(volumeNode, segmentationNode, image)
        real = self.real_patch(image, tumour, bundle)
        models = load_neogen(self.resolve_bundle(bundle), device)
        tumour_patch = self._tumour_patch(image, tumour, bundle)
        arrays = generate_patches(models, [(tumour_patch, None)] * int(count), int(label), seed, steps, progress=False)
        patches = [real.with_array(a.astype(np.float32)) for a in arrays]
        return self.show_patches(volumeNode, patches, real, name=f"PNI{'+' if label else '-'}")

    def _tumour_patch(self, image: Volume, tumour: Volume, bundle) -> np.ndarray:
        from neonet_core.tlcr import tlcr_from_config

        return tlcr_from_config(image, tumour, None, self.preprocess_config(bundle)).tumour_patch.array

    def start_generate(self, volumeNode, segmentationNode=None, bundle=None, count: int = 4, label: int = 1,
                       device: str = "auto", seed: int = 0, steps: int | None = None) -> Job:
        """:meth:`generate` in a background ``neonet generate`` process (one-case manifest in a work folder)."""
        from neonet_core.io import read_volume, write_volume

        image = self.image_from_node(volumeNode)
        tumour = self.generation_tumour(volumeNode, segmentationNode, image)
        bundle_path = self.resolve_bundle(bundle)
        real = self.real_patch(image, tumour, bundle_path)
        work = new_workdir()
        write_volume(image, work / "image.nrrd")
        write_volume(tumour, work / "tumour.nrrd")
        (work / "manifest.csv").write_text(f"case_id,image,tumor_mask,label\ncase,image.nrrd,tumour.nrrd,{int(label)}\n")
        arguments = ["generate", "--bundle", bundle_path, "--manifest", work / "manifest.csv", "--label", int(label),
                     "--count", int(count), "--out", work / "generated", "--seed", int(seed)]
        if steps is not None:
            arguments += ["--steps", int(steps)]

        def load(workdir: Path):
            files = sorted((workdir / "generated" / "images").glob("*.nii.gz"))
            patches = [read_volume(f) for f in files]
            return self.show_patches(volumeNode, patches, real, name=f"PNI{'+' if label else '-'}")

        return Job("generate", arguments, device, load, work, command=self.cli_command).start()

    # --- saving through Slicer's storage nodes ----------------------------------------------------
    def save_outputs(self, out: PredictionOutput, folder: str | Path) -> dict[str, Path]:
        """Write the outputs with their storage nodes: attention .nrrd, tumour .seg.nrrd, ROI .mrk.json, table .tsv.

        Files are named after the case; existing files are never overwritten (FileExistsError).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = _safe_name(out.case_id)
        targets = {
            "attention": (out.attentionNode, folder / f"{stem}_attention.nrrd"),
            "tumour": (out.tumourNode, folder / f"{stem}_tumour.seg.nrrd"),
            "roi": (out.roiNode, folder / f"{stem}_tlcr.mrk.json"),
            "table": (out.tableNode, folder / f"{stem}_results.tsv"),
        }
        for _, path in targets.values():
            if path.exists():
                raise FileExistsError(f"{path}: already exists; NeoNet does not overwrite files")
        return {key: save_node(node, path) for key, (node, path) in targets.items() if node is not None}


def read_prediction(folder: Path, image: Volume, tumour: Volume | None):
    """The :class:`neonet_core.predict.Prediction` that ``neonet predict --out folder`` wrote for ``image``.

    ``tumour``: the mask that was given with ``--mask`` (None: NeoSeg's ``tumour.nii.gz`` is read).
    Output volumes are put back on ``image``'s grid (the files hold its geometry already).
    """
    import json

    from neonet_core.io import read_volume
    from neonet_core.predict import Prediction
    from neonet_core.tlcr import ROI

    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))

    def on_image(path: Path) -> Volume:
        volume = read_volume(path)
        if not volume.same_grid(image, tol=1e-3):
            raise ValueError(f"{path}: not on the input volume's grid")
        return image.with_array(volume.array)

    return Prediction(
        probability=float(result["probability"]),
        label=int(result["label"]),
        threshold=float(result["threshold"]),
        uncertainty=float(result["uncertainty"]),
        roi=ROI.from_dict(result["roi"]),
        attention=on_image(folder / "attention.nii.gz"),
        tumour=tumour if tumour is not None else on_image(folder / "tumour.nii.gz"),
        tumour_source=str(result["tumour_source"]),
        timings={k: float(v) for k, v in result.get("timings_s", {}).items()},
        bundle_name=str(result.get("bundle_name", "")),
        bundle_version=str(result.get("bundle_version", "")),
        class_names=list(result.get("class_names", ["PNI-", "PNI+"])),
    )


def save_node(node, path: str | Path) -> Path:
    """Write ``node`` to ``path`` through its default storage node (a temp name, then renamed)."""
    from neonet_core.fileio import atomic_path

    path = Path(path)
    storage = node.GetStorageNode()
    if storage is None:
        storage = node.CreateDefaultStorageNode()
        node.GetScene().AddNode(storage)
        node.SetAndObserveStorageNodeID(storage.GetID())
    suffix = ".seg.nrrd" if path.name.endswith(".seg.nrrd") else ".mrk.json" if path.name.endswith(".mrk.json") else path.suffix
    with atomic_path(path, suffix=suffix) as tmp:
        storage.SetFileName(str(tmp))
        if not storage.WriteData(node):
            raise OSError(f"{path}: Slicer could not write node {node.GetName()!r}")
        if path.suffix == ".tsv":  # the table writer adds a schema file beside the data
            schema = tmp.with_name(tmp.name[: -len(".tsv")] + ".schema.tsv")
            if schema.exists():
                schema.replace(path.with_name(path.name[: -len(".tsv")] + ".schema.tsv"))
    storage.SetFileName(str(path))
    return path


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._") or "case"
