"""NeoSeg: automatic tumour localisation (MONAI UNet at a coarse isotropic resolution) feeding TLCR.

Public API::

    train_seg(train_cases, val_cases, config, out_dir, device="auto", resume=False) -> Path (bundle dir)
    load_segmenter(bundle, device="cpu") -> Segmenter;  Segmenter.segment(image) -> SegResult
    localise(image, tumour_mask, bundle) -> (tumour Volume, "user" | "neoseg")
"""

from neonet_core.neoseg.infer import Segmenter, SegResult, load_segmenter, localise
from neonet_core.neoseg.model import build_seg_net
from neonet_core.neoseg.train import save_seg_network, train_seg

__all__ = ["Segmenter", "SegResult", "build_seg_net", "load_segmenter", "localise", "save_seg_network", "train_seg"]
