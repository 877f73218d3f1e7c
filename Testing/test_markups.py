"""The TLCR ROI as a Slicer markups file: round trip, and a real Slicer MRML scene reads it."""

import json

import numpy as np
import pytest

from neonet_core.errors import InputError
from neonet_core.markups import read_roi_mrk_json, write_roi_mrk_json
from neonet_core.tlcr import ROI
from neonet_core.volume import lps_to_ras


def _oblique_roi():
    a, b = 0.4, 0.2
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return ROI((1.5, -20.25, 33.0), (64.0, 50.0, 40.0), rz @ rx)


def test_round_trip_and_schema(tmp_path):
    roi = _oblique_roi()
    path = write_roi_mrk_json(roi, tmp_path / "roi.mrk.json", name="case7")
    document = json.loads(path.read_text())
    markup = document["markups"][0]
    assert document["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert markup["type"] == "ROI" and markup["roiType"] == "Box" and markup["coordinateSystem"] == "LPS"
    assert len(markup["orientation"]) == 9 and markup["size"] == [64.0, 50.0, 40.0]
    back = read_roi_mrk_json(path)
    assert np.allclose(back.center, roi.center, atol=1e-12)
    assert np.allclose(back.size_mm, roi.size_mm) and np.allclose(back.axes, roi.axes, atol=1e-12)


def test_reads_ras_files(tmp_path):
    roi = _oblique_roi()
    document = json.loads(write_roi_mrk_json(roi, tmp_path / "lps.mrk.json").read_text())
    markup = document["markups"][0]
    markup["coordinateSystem"] = "RAS"
    markup["center"] = lps_to_ras(np.asarray(roi.center)).tolist()
    markup["orientation"] = lps_to_ras(roi.axes).flatten().tolist()
    (tmp_path / "ras.mrk.json").write_text(json.dumps(document))
    back = read_roi_mrk_json(tmp_path / "ras.mrk.json")
    assert np.allclose(back.center, roi.center, atol=1e-12) and np.allclose(back.axes, roi.axes, atol=1e-12)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "bad.mrk.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.mrk\.json: not a readable markups JSON"):
        read_roi_mrk_json(tmp_path / "bad.mrk.json")
    (tmp_path / "points.mrk.json").write_text(json.dumps({"markups": [{"type": "Fiducial"}]}))
    with pytest.raises(InputError, match="no ROI markup"):
        read_roi_mrk_json(tmp_path / "points.mrk.json")
    with pytest.raises(InputError, match="not found"):
        read_roi_mrk_json(tmp_path / "missing.mrk.json")


def test_slicer_reads_the_file_in_a_real_scene(tmp_path):
    slicer = pytest.importorskip("slicer")
    roi = _oblique_roi()
    path = write_roi_mrk_json(roi, tmp_path / "roi.mrk.json")
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
    storage = slicer.vtkMRMLMarkupsROIJsonStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    center = [0.0, 0.0, 0.0]
    node.GetCenter(center)
    assert np.allclose(center, lps_to_ras(np.asarray(roi.center)), atol=1e-4)
    assert np.allclose(node.GetSize(), roi.size_mm, atol=1e-4)
    matrix = node.GetObjectToNodeMatrix()
    axes_ras = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    assert np.allclose(axes_ras, lps_to_ras(roi.axes), atol=1e-4)
    assert node.GetNthControlPointLabel(0) == "TLCR"
