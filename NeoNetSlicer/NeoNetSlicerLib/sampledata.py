"""The phantom case offered as Slicer sample data (files in ``Resources/SampleData``, SHA-256 checked).

Regenerate the files (same voxels every time) with::

    python NeoNetSlicer/Scripts/make_resources.py --sample-data

then paste the printed SHA-256 values into :data:`SAMPLE_FILES`. A test checks that the shipped
files match these hashes, so a stale hash cannot slip through.
"""

from __future__ import annotations

from pathlib import Path

CATEGORY = "NeoNet"
SAMPLE_NAME = "NeoNetPhantom"
PHANTOM_SEED, PHANTOM_INDEX, PHANTOM_LABEL = 2026, 0, 1  # a PNI+ synthetic phantom case

# file name -> (node name, Slicer file type, SHA-256)
SAMPLE_FILES = {
    "NeoNetPhantom.nrrd": ("NeoNetPhantom", "VolumeFile", "9a860df926cfdb901a514f98b3288fc42e32625091de0daae737475ec168abe8"),
    "NeoNetPhantom_tumour.seg.nrrd": ("NeoNetPhantom tumour", "SegmentationFile", "f49a0c5c056af39a03efd06f48405ed10c7c3836df69d8c7e61afd961a421f08"),
}


def sample_data_dir() -> Path:
    """``Resources/SampleData`` of the module (installed or in the source tree)."""
    return Path(__file__).resolve().parent.parent / "Resources" / "SampleData"


def registration_arguments(folder: str | Path | None = None, thumbnail: str | Path | None = None) -> dict:
    """Keyword arguments for ``SampleData.SampleDataLogic.registerCustomSampleDataSource``.

    The files are local (``file://`` URIs into the extension's own folder), checked by SHA-256.
    ``loadFileType`` (a list): the name every Slicer accepts (5.6 knows no ``loadFileTypes``; newer
    releases map it to ``loadFileTypes``).
    """
    folder = Path(folder) if folder is not None else sample_data_dir()
    names = list(SAMPLE_FILES)
    return {
        "category": CATEGORY,
        "sampleName": SAMPLE_NAME,
        "uris": [(folder / n).resolve().as_uri() for n in names],
        "fileNames": names,
        "nodeNames": [SAMPLE_FILES[n][0] for n in names],
        "loadFileType": [SAMPLE_FILES[n][1] for n in names],
        "checksums": [f"SHA256:{SAMPLE_FILES[n][2]}" for n in names],
        "thumbnailFileName": None if thumbnail is None else str(thumbnail),
    }


def register() -> bool:
    """Inside Slicer: add the phantom case to the Sample Data module (False when the module or the files are absent)."""
    try:
        import SampleData
    except ImportError:
        return False
    if not all((sample_data_dir() / name).is_file() for name in SAMPLE_FILES):
        return False
    icon = Path(__file__).resolve().parent.parent / "Resources" / "Icons" / "NeoNetSlicer.png"
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**registration_arguments(thumbnail=icon))
    return True


def make_sample_files(folder: str | Path) -> dict[str, str]:
    """Write the phantom case (image .nrrd + tumour .seg.nrrd) into ``folder``; returns {file: sha256}.

    Existing files are replaced only through an atomic rename (these are generated resources).
    """
    from neonet_core.io import write_segmentation, write_volume
    from neonet_core.phantom.case import generate_case

    folder = Path(folder)
    case = generate_case(PHANTOM_INDEX, PHANTOM_SEED, PHANTOM_LABEL)
    names = list(SAMPLE_FILES)
    write_volume(case.image, folder / names[0])
    write_segmentation(case.tumour, {1: "tumour"}, folder / names[1])
    for name in names:  # atomic writes create private (0600) files; resources are for everyone to read
        (folder / name).chmod(0o644)
    from neonet_core.bundle import sha256_file

    return {n: sha256_file(folder / n) for n in names}
