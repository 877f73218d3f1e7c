"""NeoGen patches conditioned on a case's tumour, shown as a browsable volume sequence beside the
case's real patch: two linked slice views side by side, synthetic left and real right, each with its
tumour mask outlined. One path: a one-case manifest in a work folder, then the library functions that
``neonet generate`` runs (seeded mask flips and rotations included), in this process
(:meth:`GenerateLogic.generate`) or in a background CLI job (:meth:`GenerateLogic.start_generate`).
The same seed gives the same patches either way. No Qt."""

from __future__ import annotations

import shutil
from pathlib import Path

from neonet_core.volume import Volume

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.base import LogicBase, read_on_grid
from NeoNetSlicerLib.geometry import update_node_from_volume
from NeoNetSlicerLib.jobs import Job


class GenerateLogic(LogicBase):
    """NeoGen on a volume node and its tumour."""

    # --- showing patches ---------------------------------------------------------------------------
    def show_patches(self, volumeNode, patches: list[Volume], real_patch: Volume | None = None, name: str = "synthetic",
                     masks: list[Volume] | None = None, real_mask: Volume | None = None):
        """Load ``patches`` as a volume sequence with a browser (and ``real_patch`` as a volume beside it).

        ``masks``: the tumour mask each patch was conditioned on, a labelmap sequence (role
        ``conditioning:<name>``) browsed in step with the patches; ``real_mask``: the real patch's.
        With a real patch, the views go side by side (:meth:`show_beside_real`). Returns
        ``(sequence node, browser node, proxy volume node, real patch node or None)``.
        """
        input_id = volumeNode.GetID() if volumeNode is not None else None
        base = volumeNode.GetName() if volumeNode is not None else "NeoNet"
        sequence = nodes.output_node(self.scene, "vtkMRMLSequenceNode", f"patches:{name}", input_id, f"{base} {name} patches")
        nodes.set_volume_sequence(sequence, patches)
        browser = nodes.output_node(self.scene, "vtkMRMLSequenceBrowserNode", f"browser:{name}", input_id, f"{base} {name} patches browser")
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        if masks is not None:
            conditioning = nodes.output_node(self.scene, "vtkMRMLSequenceNode", f"conditioning:{name}", input_id, f"{base} {name} conditioning")
            nodes.set_volume_sequence(conditioning, masks, "vtkMRMLLabelMapVolumeNode")
            browser.AddSynchronizedSequenceNodeID(conditioning.GetID())
        browser.SetSelectedItemNumber(0)
        proxy = self._update_proxies(browser, sequence)
        real_node = None
        if real_patch is not None:
            real_node = nodes.output_node(self.scene, "vtkMRMLScalarVolumeNode", "real_patch", input_id, f"{base} real patch")
            update_node_from_volume(real_node, real_patch)
            real_mask_node = None
            if real_mask is not None:
                real_mask_node = nodes.output_node(self.scene, "vtkMRMLLabelMapVolumeNode", "real_patch_mask", input_id, f"{base} real patch tumour")
                update_node_from_volume(real_mask_node, real_mask)
            conditioning_proxy = browser.GetProxyNode(conditioning) if masks is not None else None
            self.show_beside_real(proxy, conditioning_proxy, real_node, real_mask_node)
        return sequence, browser, proxy, real_node

    def show_beside_real(self, proxy, proxy_mask, real, real_mask) -> None:
        """Side-by-side layout: the synthetic patch (Red) and the real one (Yellow), each with its tumour
        outlined, the two views linked. The other views keep showing the case."""
        layout = self.scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
        if layout is not None:
            layout.SetViewArrangement(layout.SlicerLayoutSideBySideView)
        shown = {"Red": (proxy, proxy_mask), "Yellow": (real, real_mask)}
        for n in range(self.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
            composite = self.scene.GetNthNodeByClass(n, "vtkMRMLSliceCompositeNode")
            if composite.GetLayoutName() not in shown:
                continue
            background, label = shown[composite.GetLayoutName()]
            composite.SetBackgroundVolumeID(background.GetID())
            composite.SetForegroundVolumeID(None)
            composite.SetLabelVolumeID(label.GetID() if label is not None else None)
            composite.SetLinkedControl(True)
            slice_node = self.scene.GetSingletonNode(composite.GetLayoutName(), "vtkMRMLSliceNode")
            if slice_node is not None:
                slice_node.SetUseLabelOutline(True)

    def _update_proxies(self, browser, sequence):
        app = self.app_logic
        sequences_logic = app.GetModuleLogic("Sequences") if app is not None else None
        if sequences_logic is not None:
            sequences_logic.UpdateProxyNodesFromSequences(browser)
        import vtk

        sequences = vtk.vtkCollection()
        browser.GetSynchronizedSequenceNodes(sequences, True)
        for n in range(sequences.GetNumberOfItems()):
            proxy = browser.GetProxyNode(sequences.GetItemAsObject(n))
            if proxy is not None:  # NeoNet's, like the sequences: kept out of the input selector
                proxy.SetAttribute(nodes.ROLE, "patch-proxy")
        return browser.GetProxyNode(sequence)

    def select_patch(self, browser, index: int):
        """Show patch ``index`` of ``browser``'s sequence in its proxy node."""
        browser.SetSelectedItemNumber(int(index))
        return self._update_proxies(browser, browser.GetMasterSequenceNode())

    # --- inputs ------------------------------------------------------------------------------------
    def generation_tumour(self, volumeNode, segmentationNode, image: Volume) -> Volume:
        """The tumour that conditions generation: the user's segmentation, else NeoNet's own (Localize first)."""
        if segmentationNode is None:
            segmentationNode = nodes.find_output(self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID())
            if segmentationNode is None:
                raise ValueError(f"no tumour for {volumeNode.GetName()!r}: choose a tumour segmentation or click Localize first")
        return self.tumour_from_node(segmentationNode, volumeNode, image)

    def real_patch(self, image: Volume, tumour: Volume, bundle=None) -> tuple[Volume, Volume]:
        """The case's own TLCR patch, normalised like NeoGen's output (0..1), and its tumour mask, on the patch grid."""
        from neonet_core.normalize import normalise_from_config
        from neonet_core.tlcr import tlcr_from_config

        preprocess = self.preprocess_config(bundle)
        crop = tlcr_from_config(image, tumour, None, preprocess)
        return normalise_from_config(crop.image_patch, preprocess), crop.tumour_patch

    # --- generating ------------------------------------------------------------------------------
    def generate(self, volumeNode, segmentationNode=None, bundle=None, count: int = 4, label: int = 1,
                 device: str = "auto", seed: int = 0, steps: int | None = None):
        """NeoGen patches of class ``label`` conditioned on this case's tumour, loaded as a browsable sequence.

        Runs here what ``neonet generate`` runs. Returns ``(sequence node, browser node, proxy volume
        node, real patch node)``.
        """
        from neonet_core.manifest import read_manifest
        from neonet_core.neogen.generate import generate_cases, load_neogen, plan_synthetic

        bundle_path, work, load = self._generation_folder(volumeNode, segmentationNode, bundle, label)
        try:
            sources = read_manifest(work / "manifest.csv", require_tumor_masks=True)
            plans = plan_synthetic(sources, int(count), int(seed))
            generate_cases(load_neogen(bundle_path, device), plans, int(label), work / "generated", int(seed), steps)
            return load(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def start_generate(self, volumeNode, segmentationNode=None, bundle=None, count: int = 4, label: int = 1,
                       device: str = "auto", seed: int = 0, steps: int | None = None) -> Job:
        """:meth:`generate` in a background ``neonet generate`` process; poll or wait the returned job."""
        bundle_path, work, load = self._generation_folder(volumeNode, segmentationNode, bundle, label)
        arguments = ["generate", "--bundle", bundle_path, "--manifest", work / "manifest.csv", "--label", int(label),
                     "--count", int(count), "--out", work / "generated", "--seed", int(seed)]
        if steps is not None:
            arguments += ["--steps", int(steps)]
        return self._start_job("generate", arguments, device, load, work)

    def _generation_folder(self, volumeNode, segmentationNode, bundle, label: int):
        """``(bundle path, work folder, load)``: the folder holds the one-case manifest that ``neonet generate``
        reads; ``load(folder)`` shows the patches and conditioning masks it wrote under ``generated/``
        beside the real patch."""
        image = self.image_from_node(volumeNode)
        tumour = self.generation_tumour(volumeNode, segmentationNode, image)
        bundle_path = self.resolve_bundle(bundle)
        real, real_mask = self.real_patch(image, tumour, bundle_path)
        work = self._job_folder(image=image, tumour=tumour)
        (work / "manifest.csv").write_text(f"case_id,image,tumor_mask,label\ncase,image.nrrd,tumour.nrrd,{int(label)}\n")

        def load(workdir: Path):
            images = sorted((workdir / "generated" / "images").glob("*.nii.gz"))
            masks = [workdir / "generated" / "masks" / f.name.replace(".nii.gz", "_tumour.nii.gz") for f in images]
            return self.show_patches(volumeNode, [read_on_grid(f, real) for f in images], real, name=f"PNI{'+' if label else '-'}",
                                     masks=[read_on_grid(f, real) for f in masks], real_mask=real_mask)

        return bundle_path, work, load
