"""NeoNet core library: PNI prediction from 3D MRI (NeoSeg, NeoGen, NeoCls).

Pure Python on torch + MONAI + SimpleITK + numpy; no Qt, no Slicer.
"""

__version__ = "0.1.0"

from neonet_core.errors import BundleError, InputError, ManifestError, NeoNetError
from neonet_core.volume import Volume

__all__ = ["__version__", "Volume", "NeoNetError", "InputError", "ManifestError", "BundleError"]
