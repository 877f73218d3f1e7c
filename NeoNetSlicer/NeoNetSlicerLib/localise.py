"""Find the tumour with NeoSeg, in this process or in a background ``neonet segment`` job: NeoNet's
tumour segmentation and TLCR ROI nodes for the volume. No Qt."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neonet_core.volume import Volume

from NeoNetSlicerLib.base import LogicBase
from NeoNetSlicerLib.jobs import Job


class LocaliseLogic(LogicBase):
    """NeoSeg on a volume node."""

    def segmenter(self, bundle, device: str = "auto"):
        """The library's NeoSeg :class:`Segmenter` of ``bundle`` on ``device`` (the last one is kept loaded)."""
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

        tumour_node = self.set_tumour(volumeNode, mask, source)
        preprocess = self.preprocess_config(bundle)
        roi_node = self.set_roi(volumeNode, tumour_roi(image, mask, preprocess.roi_mm, preprocess.component))
        ml = float(np.count_nonzero(mask.array) * np.prod(image.spacing) / 1000.0)
        return tumour_node, roi_node, ml

    def start_localize(self, volumeNode, bundle=None, device: str = "auto") -> Job:
        """:meth:`localize` in a background ``neonet segment`` process; poll or wait the returned job."""
        from neonet_core.io import read_volume

        image = self.image_from_node(volumeNode)
        bundle_path = self.resolve_bundle(bundle)
        work = self._job_folder(image=image)
        arguments = ["segment", "--bundle", bundle_path, "--image", work / "image.nrrd", "--out", work / "tumour.nrrd"]

        def load(workdir: Path):
            mask = read_volume(workdir / "tumour.nrrd")
            return self.show_tumour(volumeNode, image, image.with_array(mask.array.astype(np.uint8)), bundle_path)

        return self._start_job("localize", arguments, device, load, work)
