"""The TLCR box as a 3D Slicer markups ROI file (``.mrk.json``).

Schema: markups-schema-v1.0.3 (Slicer 5.x reads it). We write ``coordinateSystem: "LPS"``, the
library's own frame, so the numbers in the file are the ROI's numbers unchanged; Slicer converts to
RAS when it loads the file. ``orientation`` is the 3x3 matrix whose columns are the box axes,
flattened row by row (Slicer's own layout, checked against its reader); ``size`` is the box edge
lengths along those axes; ``roiType`` is "Box". The reader accepts LPS or RAS files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neonet_core.errors import InputError
from neonet_core.fileio import write_text_atomic
from neonet_core.tlcr import ROI
from neonet_core.volume import ras_to_lps

SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/main/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


def roi_markup(roi: ROI, name: str = "TLCR") -> dict:
    """The markups JSON document (a dict) for ``roi``."""
    orientation = roi.axes.flatten().tolist()
    return {
        "@schema": SCHEMA,
        "markups": [
            {
                "type": "ROI",
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "locked": True,
                "roiType": "Box",
                "center": list(roi.center),
                "orientation": orientation,
                "size": list(roi.size_mm),
                "insideOut": False,
                "controlPoints": [
                    {
                        "id": "1",
                        "label": name,
                        "description": "NeoNet tumour-localised ROI crop",
                        "position": list(roi.center),
                        "orientation": orientation,
                        "selected": True,
                        "locked": True,
                        "visibility": True,
                        "positionStatus": "defined",
                    }
                ],
            }
        ],
    }


def write_roi_mrk_json(roi: ROI, path: str | Path, name: str = "TLCR") -> Path:
    """Write ``roi`` as a Slicer markups ROI file, atomically. Returns the path."""
    path = Path(path)
    write_text_atomic(path, json.dumps(roi_markup(roi, name), indent=2) + "\n")
    return path


def read_roi_mrk_json(path: str | Path) -> ROI:
    """Read the first ROI markup of a ``.mrk.json`` file (LPS or RAS) as an :class:`ROI` in LPS."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, f"not a readable markups JSON file ({err})") from None
    markups = document.get("markups") if isinstance(document, dict) else None
    rois = [m for m in markups or [] if isinstance(m, dict) and m.get("type") == "ROI"]
    if not rois:
        raise InputError(path, "no ROI markup in this file")
    markup = rois[0]
    system = markup.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        raise InputError(path, f"unknown coordinateSystem {system!r} (expected LPS or RAS)")
    try:
        center = np.asarray(markup["center"], dtype=np.float64).reshape(3)
        size = np.asarray(markup["size"], dtype=np.float64).reshape(3)
        axes = np.asarray(markup.get("orientation", np.eye(3).flatten()), dtype=np.float64).reshape(3, 3)
    except (KeyError, ValueError, TypeError) as err:
        raise InputError(path, f"ROI markup needs center (3), size (3) and orientation (9) numbers ({err})") from None
    if system == "RAS":
        center, axes = ras_to_lps(center), ras_to_lps(axes)
    try:
        return ROI(center, size, axes)
    except ValueError as err:
        raise InputError(path, f"invalid ROI: {err}") from None

