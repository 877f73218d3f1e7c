"""Output nodes: find-or-create by role, and fill them from neonet_core results. No Qt.

Every node NeoNet creates carries two attributes: ``NeoNet.Role`` (tumour, roi, attention, results,
patches, ...) and ``NeoNet.InputNodeID`` (the user's volume node it belongs to), set before the node
enters the scene, and sits beside its input in the subject hierarchy (under the input's study). A
re-run finds its own nodes through these attributes and updates them; the user's nodes are only ever
read. A tumour segmentation the user has edited since NeoNet wrote it is never written again
(:func:`user_edited`).
"""

from __future__ import annotations

import numpy as np

from neonet_core.tlcr import ROI
from neonet_core.volume import Volume, lps_to_ras

from NeoNetSlicerLib.geometry import numpy_to_vtk_matrix, update_node_from_volume

ROLE = "NeoNet.Role"
INPUT = "NeoNet.InputNodeID"
DIGEST = "NeoNet.MaskDigest"  # of the tumour mask NeoNet last wrote into a segmentation
ATTENTION_COLOR_NAME = "NeoNet attention"
TUMOUR_COLOR = (0.9, 0.35, 0.2)


# --- find or create --------------------------------------------------------------------------------
def find_output(scene, class_name: str, role: str, input_id: str | None):
    """The node of ``class_name`` made by NeoNet for ``role`` and ``input_id``, or None."""
    for n in range(scene.GetNumberOfNodesByClass(class_name)):
        node = scene.GetNthNodeByClass(n, class_name)
        if node.GetAttribute(ROLE) == role and node.GetAttribute(INPUT) == (input_id or ""):
            return node
    return None


def output_node(scene, class_name: str, role: str, input_id: str | None, name: str):
    """Find NeoNet's ``role`` node for ``input_id`` or add a new one named ``name`` (display node included),
    placed beside its input in the subject hierarchy."""
    node = find_output(scene, class_name, role, input_id)
    if node is None:
        node = scene.CreateNodeByClass(class_name)
        node.UnRegister(None)  # the Python variable holds the reference
        node.SetName(scene.GenerateUniqueName(name))
        node.SetAttribute(ROLE, role)  # before the node is added: selectors see it as NeoNet's at once
        node.SetAttribute(INPUT, input_id or "")
        scene.AddNode(node)
        if hasattr(node, "CreateDefaultDisplayNodes"):
            node.CreateDefaultDisplayNodes()
        place_beside(node, scene.GetNodeByID(input_id) if input_id else None)
    return node


def own_output_ids(scene) -> list[str]:
    """IDs of every node NeoNet made (to keep them out of the input selector)."""
    nodes = (scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes()))
    return [node.GetID() for node in nodes if node.GetAttribute(ROLE)]


def place_beside(node, input_node) -> None:
    """Put ``node`` under the subject-hierarchy parent of ``input_node`` (its study), when there is one."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    if hierarchy is None or input_node is None:
        return
    parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(input_node))
    if not parent or parent == hierarchy.GetSceneItemID():
        return
    item = hierarchy.GetItemByDataNode(node)  # Slicer's plugin logic makes one as the node is added
    if item:
        hierarchy.SetItemParent(item, parent)
    else:
        hierarchy.CreateItem(parent, node)


# --- colours ---------------------------------------------------------------------------------------
def attention_color_node(scene):
    """A 256-entry colour table for the attention overlay: transparent at 0, red to yellow upwards."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLColorTableNode")
        if node.GetName() == ATTENTION_COLOR_NAME and node.GetAttribute(ROLE) == "colors":
            return node
    import slicer

    node = slicer.vtkMRMLColorTableNode()
    node.SetName(ATTENTION_COLOR_NAME)
    node.SetTypeToUser()
    node.SetAttribute(ROLE, "colors")
    node.SetNumberOfColors(256)
    node.GetLookupTable().SetRange(0.0, 255.0)
    for n in range(256):
        t = n / 255.0
        red, green, blue = min(1.0, 2.0 * t), max(0.0, 2.0 * t - 1.0), 0.0
        node.SetColor(n, f"attention_{n}", red, green, blue, 0.0 if n == 0 else min(1.0, 0.25 + t))
    node.SetHideFromEditors(False)
    scene.AddNode(node)
    return node


# --- volumes ---------------------------------------------------------------------------------------
def set_attention(node, attention: Volume, scene) -> None:
    """Fill ``node`` with the attention map (float32, 0..1) and show it with the attention colours."""
    update_node_from_volume(node, attention.with_array(attention.array.astype(np.float32, copy=False)))
    display = node.GetDisplayNode()
    if display is None:
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(attention_color_node(scene).GetID())
    display.SetAutoWindowLevel(False)
    top = float(attention.array.max()) if attention.array.size else 1.0
    display.SetWindowLevelMinMax(0.0, max(top, 1e-6))
    display.SetInterpolate(True)


def show_foreground(scene, volume_node, background_node=None, opacity: float = 0.5, showing=None) -> int:
    """Show ``volume_node`` as the foreground layer (None hides it) at ``opacity`` in the slice views.

    ``background_node``: put it in the background of every view first. ``showing``: change only the
    views whose background is this node. Works on the scene's slice composite nodes, so it needs no
    Qt; returns how many views changed.
    """
    changed = 0
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(n, "vtkMRMLSliceCompositeNode")
        if showing is not None and composite.GetBackgroundVolumeID() != showing.GetID():
            continue
        if background_node is not None:
            composite.SetBackgroundVolumeID(background_node.GetID())
        composite.SetForegroundVolumeID(volume_node.GetID() if volume_node is not None else None)
        composite.SetForegroundOpacity(opacity)
        changed += 1
    return changed


# --- segmentation ----------------------------------------------------------------------------------
def set_segment(segmentation_node, mask: Volume, reference_node, segment_name: str = "tumour", color=TUMOUR_COLOR) -> str:
    """Replace ``segmentation_node``'s segments by one segment ``segment_name`` made from ``mask`` (nonzero voxels).

    The reference geometry is set from ``reference_node`` (the user's volume). Returns the segment ID.
    """
    import slicer

    scene = segmentation_node.GetScene()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    segmentation_node.GetSegmentation().RemoveAllSegments()
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmap)
    try:
        update_node_from_volume(labelmap, mask.with_array((mask.array != 0).astype(np.uint8)))
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
            raise RuntimeError(f"could not import the tumour mask into segmentation {segmentation_node.GetName()!r}")
    finally:
        scene.RemoveNode(labelmap)
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:  # empty mask: keep an empty, named segment
        segmentation.AddEmptySegment("tumour", segment_name, list(color))
    segment_id = segmentation.GetNthSegmentID(0)
    segment = segmentation.GetSegment(segment_id)
    segment.SetName(segment_name)
    segment.SetColor(*color)
    segmentation_node.SetAttribute(DIGEST, mask_digest(mask.array))  # what exporting the segment gives back
    return segment_id


def mask_digest(array: np.ndarray) -> str:
    """A fingerprint of a 0/1 mask (its shape and nonzero voxels)."""
    import hashlib

    return hashlib.sha1(str(array.shape).encode() + np.packbits(np.asarray(array) != 0).tobytes()).hexdigest()


def user_edited(segmentation_node, reference_node, grid: Volume) -> bool:
    """True when ``segmentation_node`` no longer holds exactly the one tumour segment NeoNet wrote into it
    (the user edited, added or removed segments, e.g. in the Segment Editor)."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() != 1 or not segmentation_node.GetAttribute(DIGEST):
        return segmentation.GetNumberOfSegments() > 0
    current = mask_from_segmentation(segmentation_node, reference_node, grid, segmentation.GetNthSegmentID(0))
    return mask_digest(current.array) != segmentation_node.GetAttribute(DIGEST)


def mask_from_segmentation(segmentation_node, reference_node, image: Volume, segment_id: str | None = None) -> Volume:
    """One segment of ``segmentation_node`` as a uint8 0/1 mask on ``image``'s grid (``reference_node``'s voxels).

    ``segment_id`` None: the only segment, else the one whose name contains "tumo" (tumour/tumor).
    """
    import vtk

    import slicer

    segmentation = segmentation_node.GetSegmentation()
    if segment_id is None:
        segment_id = pick_tumour_segment(segmentation_node)
    elif segmentation.GetSegment(segment_id) is None:
        raise ValueError(f"segmentation {segmentation_node.GetName()!r} has no segment with ID {segment_id!r}")
    scene = reference_node.GetScene()
    labelmap = slicer.vtkMRMLLabelMapVolumeNode()
    scene.AddNode(labelmap)
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, reference_node):
            raise RuntimeError(f"could not export segment {segment_id!r} of {segmentation_node.GetName()!r}")
        import vtk.util.numpy_support as ns

        data = labelmap.GetImageData()
        array = ns.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(data.GetDimensions()[::-1]).copy()  # the node goes
    finally:
        scene.RemoveNode(labelmap)
    if array.shape != image.array.shape:
        raise RuntimeError(f"exported segment has shape {array.shape}, expected the volume's {image.array.shape}")
    return image.with_array((array != 0).astype(np.uint8), segment_id=segment_id)


def segment_choices(node) -> tuple[list[tuple[str, str]], int]:
    """``([(name, segment ID)], index to preselect)`` for a segmentation with several segments (else ``([], -1)``);
    preselected: the one :func:`pick_tumour_segment` picks, else none."""
    if node is None or not node.IsA("vtkMRMLSegmentationNode") or node.GetSegmentation().GetNumberOfSegments() < 2:
        return [], -1
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    try:
        preselected = ids.index(pick_tumour_segment(node))
    except ValueError:  # no single segment named like a tumour: the user picks
        preselected = -1
    return [(segmentation.GetSegment(i).GetName(), i) for i in ids], preselected


def pick_tumour_segment(segmentation_node) -> str:
    """The segment ID used as the tumour: the only segment, or the one named like tumour/tumor."""
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise ValueError(f"segmentation {segmentation_node.GetName()!r} has no segments")
    if len(ids) == 1:
        return ids[0]
    named = [i for i in ids if "tumo" in segmentation.GetSegment(i).GetName().lower()]
    if len(named) == 1:
        return named[0]
    names = ", ".join(segmentation.GetSegment(i).GetName() for i in ids)
    raise ValueError(f"segmentation {segmentation_node.GetName()!r} has several segments ({names}); choose the tumour segment")


# --- ROI -------------------------------------------------------------------------------------------
def set_roi(roi_node, roi: ROI) -> None:
    """Place the markups ROI node on ``roi`` (LPS box -> RAS node), locked, as a box."""
    matrix = np.eye(4)
    matrix[:3, :3] = lps_to_ras(roi.axes)
    matrix[:3, 3] = lps_to_ras(np.asarray(roi.center))
    roi_node.SetROIType(roi_node.ROITypeBox)
    roi_node.SetAndObserveObjectToNodeMatrix(numpy_to_vtk_matrix(matrix))
    roi_node.SetSize(*roi.size_mm)
    roi_node.SetLocked(True)


def roi_from_node(roi_node) -> ROI:
    """A markups ROI node -> :class:`ROI` in LPS (centre, size, axes)."""
    from NeoNetSlicerLib.geometry import vtk_to_numpy_matrix

    matrix = vtk_to_numpy_matrix(roi_node.GetObjectToNodeMatrix())
    return ROI(lps_to_ras(matrix[:3, 3]), roi_node.GetSize(), lps_to_ras(matrix[:3, :3]))


# --- table -----------------------------------------------------------------------------------------
def set_table_row(table_node, key_column: str, values: dict) -> int:
    """Write ``values`` into the row whose ``key_column`` equals ``values[key_column]`` (added if new).

    Numbers go into double columns, everything else into string columns; columns are added as needed.
    Returns the row index.
    """
    import vtk

    table = table_node.GetTable()
    for name, value in values.items():
        if table.GetColumnByName(name) is None:
            column = vtk.vtkDoubleArray() if _is_number(value) else vtk.vtkStringArray()
            column.SetName(name)
            column.SetNumberOfTuples(table.GetNumberOfRows())
            if isinstance(column, vtk.vtkDoubleArray):
                column.Fill(float("nan"))
            table.AddColumn(column)
    key = str(values[key_column])
    keys = table.GetColumnByName(key_column)
    row = next((r for r in range(table.GetNumberOfRows()) if keys.GetValue(r) == key), None)
    if row is None:
        row = table.GetNumberOfRows()
        table.InsertNextBlankRow(float("nan"))
    for name, value in values.items():
        column = table.GetColumnByName(name)
        if isinstance(column, vtk.vtkStringArray):
            column.SetValue(row, "" if value is None else str(value))
        else:
            column.SetValue(row, float("nan") if value is None else float(value))
    table.Modified()
    table_node.Modified()
    return row


def table_rows(table_node) -> list[dict]:
    """All rows of a table node as dicts (column name -> str or float)."""
    table = table_node.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        rows.append({col.GetName(): col.GetValue(r) for col in columns})
    return rows


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


# --- sequences -------------------------------------------------------------------------------------
def set_volume_sequence(sequence_node, volumes: list[Volume], node_class: str = "vtkMRMLScalarVolumeNode",
                        index_name: str = "patch") -> None:
    """Replace ``sequence_node``'s items by ``volumes`` as ``node_class`` nodes (index values "0", "1", ...)."""
    import slicer

    sequence_node.RemoveAllDataNodes()
    sequence_node.SetIndexName(index_name)
    sequence_node.SetIndexUnit("")
    sequence_node.SetIndexType(sequence_node.NumericIndex)
    holder = getattr(slicer, node_class)()
    for n, volume in enumerate(volumes):
        update_node_from_volume(holder, volume)
        sequence_node.SetDataNodeAtValue(holder, str(n))
