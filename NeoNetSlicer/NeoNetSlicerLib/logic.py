"""NeoNet on an MRML scene, without Qt: user nodes in, new (or updated) NeoNet output nodes out.

Console use (in Slicer)::

    logic = slicer.util.getModuleLogic("NeoNetSlicer")
    out = logic.predict(volumeNode, segmentationNode=None, bundle="/path/to/bundle", device="auto")
    out.probability, out.label, out.attentionNode, out.roiNode, out.tumourNode, out.tableNode

Outside Slicer (tests, batch): ``NeoNetLogic(scene, app_logic)`` on a scene from the slicer-core wheel.
Each job lives in its own module: predict, localise (NeoSeg), generate (NeoGen), outputs (saving);
``base`` holds what they share.
"""

from __future__ import annotations

from NeoNetSlicerLib.generate import GenerateLogic
from NeoNetSlicerLib.localise import LocaliseLogic
from NeoNetSlicerLib.outputs import OutputsLogic
from NeoNetSlicerLib.predict import PredictLogic


class NeoNetLogic(PredictLogic, LocaliseLogic, GenerateLogic, OutputsLogic):
    """Qt-free NeoNet logic on an MRML scene: ``NeoNetLogic(scene=None, app_logic=None)`` (defaults: Slicer's)."""
