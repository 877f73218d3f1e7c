"""What every NeoNet job on the scene shares: the scene, the user's nodes as Volumes, the model bundle,
NeoNet's tumour and ROI nodes, and background-job folders. No Qt, and no torch at import time (the
panel opens before the Python packages are installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neonet_core.volume import Volume

from NeoNetSlicerLib import nodes
from NeoNetSlicerLib.geometry import volume_from_node
from NeoNetSlicerLib.jobs import Job, new_workdir
from NeoNetSlicerLib.runner import cli_command

DEMO_BUNDLE_NAME = "neonet-demo"


def default_bundle_path() -> Path | None:
    """The demo bundle shipped with the extension (``Resources/Models/neonet-demo``), or None when absent."""
    here = Path(__file__).resolve().parent  # .../NeoNetSlicerLib
    for root in (here.parent, here.parent.parent):  # installed module folder, then the source tree
        candidate = root / "Resources" / "Models" / DEMO_BUNDLE_NAME
        if (candidate / "bundle.json").is_file():
            return candidate
    return None


def resolve_bundle(bundle) -> Path:
    """``bundle`` (path, or None for the demo bundle) as a Path; ValueError when there is none."""
    if bundle in (None, ""):
        bundle = default_bundle_path()
        if bundle is None:
            raise ValueError("no model bundle given and the demo bundle (Resources/Models/neonet-demo) is not installed")
    return Path(bundle)


_CARDS: dict = {}  # (bundle path, file stamp) -> model card text


def _stamp(path: Path):
    """What changes when a bundle changes: size and mtime of the .zip, or of the folder's bundle.json."""
    target = path / "bundle.json" if path.is_dir() else path
    try:
        info = target.stat()
    except OSError:
        return None
    return str(path.resolve()), info.st_mtime_ns, info.st_size


def model_card_text(bundle=None) -> str:
    """The library's model card of ``bundle`` (None: the demo bundle), as ``neonet bundle info`` prints it; or why there is none.

    Cached per (path, bundle.json or .zip mtime and size): the panel asks on every path edit.
    """
    from neonet_core.errors import NeoNetError

    try:
        path = resolve_bundle(bundle)
    except ValueError as err:
        return f"No model bundle. {err}"
    stamp = _stamp(path)
    if stamp in _CARDS:
        return _CARDS[stamp]
    try:
        from neonet_core.bundle import load_bundle, model_card  # imports torch, which is installed on first use
    except ImportError as err:
        return f"{path}: the model card shows once NeoNet's Python packages are installed ({err})."
    try:
        text = model_card(load_bundle(path).info, str(path))
    except (NeoNetError, OSError) as err:
        text = f"Not a usable bundle: {err}"
    if stamp is not None:
        _CARDS[stamp] = text
    return text


def read_on_grid(path: Path, grid: Volume) -> Volume:
    """The volume file ``path`` (written by the CLI on ``grid``) as a Volume on exactly ``grid``."""
    from neonet_core.io import read_volume

    volume = read_volume(path)
    if not volume.same_grid(grid, tol=1e-3):
        raise ValueError(f"{path}: not on the grid of the volume it was made for")
    return grid.with_array(volume.array)


class LogicBase:
    """The scene and inputs the job mixins (predict, localise, generate, outputs) work on.

    scene: the MRML scene (default ``slicer.mrmlScene``). app_logic: the application logic that holds
    the module logics (default ``slicer.app.applicationLogic()`` inside Slicer); only the Sequences
    logic is taken from it (to create the patch browser's proxy node).
    """

    resolve_bundle = staticmethod(resolve_bundle)

    def __init__(self, scene=None, app_logic=None):
        import slicer

        self._scene = scene
        self._app_logic = app_logic
        self._segmenters: dict[tuple[str, str], object] = {}  # NeoSeg, per (bundle, device)
        self.slicer = slicer
        self.cli_command = cli_command  # arguments -> argv of the background process (the neonet CLI)
        self.warm_worker = None  # a NeoNetSlicerLib.worker.WarmWorker running the jobs (the panel sets one), else cold processes

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

    # --- NeoNet's own nodes for an input volume ---------------------------------------------------
    def tumour_node(self, volumeNode):
        """NeoNet's tumour segmentation node for ``volumeNode`` (created when missing)."""
        return nodes.output_node(self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID(), f"{volumeNode.GetName()} NeoNet tumour")

    def set_tumour(self, volumeNode, mask: Volume, source: str):
        """NeoNet's tumour node for ``volumeNode`` holding ``mask`` (named after its ``source``: neoseg or user).

        A tumour node the user has edited since NeoNet wrote it is left as it is (it stops being
        NeoNet's: role ``tumour-edited``) and a new node takes the mask.
        """
        tumour_node = nodes.find_output(self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID())
        if tumour_node is not None and nodes.user_edited(tumour_node, volumeNode, mask):
            tumour_node.SetAttribute(nodes.ROLE, "tumour-edited")
        tumour_node = self.tumour_node(volumeNode)
        nodes.set_segment(tumour_node, mask, volumeNode, "tumour (NeoSeg)" if source == "neoseg" else "tumour")
        return tumour_node

    def is_own_tumour(self, segmentationNode, volumeNode) -> bool:
        """True when ``segmentationNode`` is NeoNet's tumour node of ``volumeNode`` (then it is read, not rewritten)."""
        return segmentationNode is not None and segmentationNode is nodes.find_output(
            self.scene, "vtkMRMLSegmentationNode", "tumour", volumeNode.GetID())

    def set_roi(self, volumeNode, roi):
        """NeoNet's TLCR ROI node for ``volumeNode``, set to ``roi`` (a :class:`neonet_core.tlcr.ROI`)."""
        roi_node = nodes.output_node(self.scene, "vtkMRMLMarkupsROINode", "roi", volumeNode.GetID(), f"{volumeNode.GetName()} TLCR")
        nodes.set_roi(roi_node, roi)
        return roi_node

    # --- background jobs ----------------------------------------------------------------------------
    def _job_folder(self, **volumes: Volume | None) -> Path:
        """A new private work folder holding ``<name>.nrrd`` for each volume given (None: no file).

        Uncompressed: the CLI reads it once, a moment later, and gzip costs seconds on a large scan."""
        from neonet_core.io import write_volume

        work = new_workdir()
        for name, volume in volumes.items():
            if volume is not None:
                write_volume(volume, work / f"{name}.nrrd", compress=False)
        return work

    def _start_job(self, name: str, arguments: list, device: str, load, work: Path) -> Job:
        """Start ``neonet <arguments> --device device`` on ``work``; ``load(work)`` fills the nodes at the end."""
        worker = self.warm_worker if self.cli_command is cli_command else None  # a test's own command runs cold
        return Job(name, arguments, device, load, work, command=self.cli_command, worker=worker).start()
