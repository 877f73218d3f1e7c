"""Saving NeoNet's output nodes through Slicer's storage nodes, never over an existing file. No Qt."""

from __future__ import annotations

from pathlib import Path

from neonet_core.batch import safe_case_name


class OutputsLogic:
    """Writes a prediction's output nodes to files."""

    def save_outputs(self, out, folder: str | Path) -> dict[str, Path]:
        """Write ``out``'s nodes (a PredictionOutput): attention .nrrd, tumour .seg.nrrd, ROI .mrk.json, table .csv.

        Files are named after the case (:func:`neonet_core.batch.safe_case_name`, as ``neonet predict``
        names its folders); existing files are never overwritten (FileExistsError).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = safe_case_name(out.case_id)
        targets = {
            "attention": (out.attentionNode, folder / f"{stem}_attention.nrrd"),
            "tumour": (out.tumourNode, folder / f"{stem}_tumour.seg.nrrd"),
            "roi": (out.roiNode, folder / f"{stem}_tlcr.mrk.json"),
            "table": (out.tableNode, folder / f"{stem}_results.csv"),
        }
        for _, path in targets.values():
            if path.exists():
                raise FileExistsError(f"{path}: already exists; NeoNet does not overwrite files")
        return {key: save_node(node, path) for key, (node, path) in targets.items() if node is not None}


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
        if path.suffix in (".csv", ".tsv"):  # the table writer adds a schema file beside the data
            schema = tmp.with_name(tmp.stem + ".schema" + path.suffix)
            if schema.exists():
                schema.replace(path.with_name(path.stem + ".schema" + path.suffix))
    storage.SetFileName(str(path))
    return path
