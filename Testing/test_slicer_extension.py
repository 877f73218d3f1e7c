"""The extension's packaging and panel: CMake lists vs files on disk, the .ui vs the Widget code,
requirements vs pyproject, sample data hashes, and a PNG preview of the panel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "NeoNetSlicer"
sys.path[:0] = [p for p in (str(ROOT), str(MODULE)) if p not in sys.path]

DEV_ONLY = {"Scripts/make_resources.py"}  # developer tools, deliberately not shipped


def cmake_list(name: str) -> list[str]:
    """The entries of ``set(name ...)`` in NeoNetSlicer/CMakeLists.txt, with ${MODULE_NAME} expanded."""
    text = (MODULE / "CMakeLists.txt").read_text()
    match = re.search(rf"set\({name}\s+(.*?)\)", text, re.S)
    assert match, f"set({name} ...) not found in NeoNetSlicer/CMakeLists.txt"
    entries = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return [e.replace("${MODULE_NAME}", "NeoNetSlicer") for e in entries if e]


def module_files(pattern: str) -> set[str]:
    return {p.relative_to(MODULE).as_posix() for p in MODULE.rglob(pattern) if "__pycache__" not in p.parts}


def test_every_module_python_file_is_listed_and_exists():
    listed = cmake_list("MODULE_PYTHON_SCRIPTS")
    assert len(listed) == len(set(listed)), "a script is listed twice"
    on_disk = module_files("*.py") - DEV_ONLY
    assert sorted(on_disk - set(listed)) == [], "Python files missing from MODULE_PYTHON_SCRIPTS"
    assert sorted(set(listed) - on_disk) == [], "MODULE_PYTHON_SCRIPTS lists files that do not exist"


def test_every_resource_is_listed_and_exists():
    listed = set(cmake_list("MODULE_PYTHON_RESOURCES"))
    resources = {p for p in module_files("*") if p.startswith("Resources/") and (MODULE / p).is_file()}
    assert sorted(resources - listed) == [], "resource files missing from MODULE_PYTHON_RESOURCES"
    assert all((MODULE / p).is_file() for p in listed), "MODULE_PYTHON_RESOURCES lists files that do not exist"
    assert {"Resources/UI/NeoNetSlicer.ui", "Resources/Icons/NeoNetSlicer.png", "requirements.txt"} <= listed


def test_top_level_cmake_has_extension_metadata():
    text = (ROOT / "CMakeLists.txt").read_text()
    for key in ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf"set\(EXTENSION_{key}\s+\S", text), f"EXTENSION_{key} missing"
    assert "add_subdirectory(NeoNetSlicer)" in text
    assert (ROOT / "Resources" / "Icons" / "NeoNetSlicer.png").is_file()


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_evaluates_the_lists_and_the_neonet_core_glob(tmp_path):
    """Run CMake itself on NeoNetSlicer/CMakeLists.txt with recording stand-ins for Slicer's macros
    (not Slicer's build: that needs a Slicer build tree), and compare what it would ship with the disk."""
    project = tmp_path / "project"
    project.mkdir()
    record = tmp_path / "record.txt"
    (project / "CMakeLists.txt").write_text(
        f"""cmake_minimum_required(VERSION 3.16)
project(Check NONE)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR lib/qt-scripted-modules)
file(WRITE {record} "")
function(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(A "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${{ARGN}})
  foreach(f ${{A_SCRIPTS}} ${{A_RESOURCES}})
    file(APPEND {record} "module ${{f}}\\n")
  endforeach()
endfunction()
function(ctkMacroCompilePythonScript)
  cmake_parse_arguments(A "NO_INSTALL_SUBDIR" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR" "SCRIPTS;RESOURCES" ${{ARGN}})
  foreach(f ${{A_SCRIPTS}})
    file(APPEND {record} "core ${{f}}\\n")
  endforeach()
endfunction()
add_subdirectory({MODULE} NeoNetSlicer)
"""
    )
    run = subprocess.run(["cmake", "-S", str(project), "-B", str(tmp_path / "build")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = [line.split(" ", 1) for line in record.read_text().splitlines()]
    shipped_module = {f for kind, f in lines if kind == "module"}
    shipped_core = {f for kind, f in lines if kind == "core"}
    assert module_files("*.py") - DEV_ONLY <= shipped_module
    core_on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "neonet_core").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert core_on_disk and core_on_disk == shipped_core, "neonet_core files the glob would not ship (non-.py files need a RESOURCES entry)"


def test_requirements_match_pyproject():
    """requirements.txt = pyproject dependencies minus torch (installed first) and what Slicer bundles."""
    from NeoNetSlicerLib.dependencies import TORCH_REQUIREMENT, missing, pip_arguments, read_requirements

    slicer_bundled = {"numpy", "scipy", "simpleitk"}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    name = lambda r: re.split(r"[<>=!~ ;\[]", r, 1)[0].lower()  # noqa: E731
    expected = {name(d): d for d in deps if name(d) not in slicer_bundled | {"torch"}}
    requirements = read_requirements()
    assert {name(r): r for r in requirements} == expected
    assert TORCH_REQUIREMENT == next(d for d in deps if name(d) == "torch")
    assert missing(requirements + [TORCH_REQUIREMENT]) == []  # this environment has them all
    assert missing(["numpy>=999", "no-such-package-neonet>=1"]) == ["numpy>=999", "no-such-package-neonet>=1"]
    assert pip_arguments(["monai>=1.4"], Path("/wheels")) == ["--no-index", "--find-links", "/wheels", "monai>=1.4"]


def test_sample_data_files_match_their_registered_sha256():
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, registration_arguments, sample_data_dir

    from neonet_core.bundle import sha256_file as sha256

    for name, (_, _, digest) in SAMPLE_FILES.items():
        path = sample_data_dir() / name
        assert path.stat().st_size < 2_000_000
        assert sha256(path) == digest, f"{name}: regenerate with Scripts/make_resources.py --sample-data and update SAMPLE_FILES"
    args = registration_arguments()
    assert args["checksums"][0] == f"SHA256:{SAMPLE_FILES['NeoNetPhantom.nrrd'][2]}"
    assert args["uris"][0].startswith("file://") and args["uris"][0].endswith("/Resources/SampleData/NeoNetPhantom.nrrd")


def test_sample_data_command_writes_a_readable_case(tmp_path):
    """The documented regeneration writes an image and a one-segment tumour on the same grid.

    (Not byte-equal to the shipped files: those stay fixed, checked by their SHA-256, while the
    phantom generator may evolve.)"""
    from neonet_core.io import read_segmentation, read_volume
    from NeoNetSlicerLib.sampledata import SAMPLE_FILES, make_sample_files

    from neonet_core.bundle import sha256_file as sha256

    digests = make_sample_files(tmp_path)
    names = list(SAMPLE_FILES)
    assert digests == {n: sha256(tmp_path / n) for n in names}
    image, tumour = read_volume(tmp_path / names[0]), read_segmentation(tmp_path / names[1])
    assert image.array.shape == (40, 128, 128) and tumour.metadata["segment_names"] == {1: "tumour"}
    assert 0 < int(tumour.array.sum()) and oct((tmp_path / names[0]).stat().st_mode)[-3:] == "644"


# --- the panel -------------------------------------------------------------------------------------
def test_panel_shows_the_library_model_card(tmp_path):
    """The panel's card is `neonet bundle info`'s; a folder that is no bundle says so."""
    from NeoNetSlicerLib.base import default_bundle_path, model_card_text
    from neonet_core.bundle import load_bundle, model_card

    demo = default_bundle_path()
    if demo is not None:
        card = model_card_text(None)
        assert card == model_card(load_bundle(demo).info, str(demo)) and "decision threshold" in card
    assert model_card_text(tmp_path).startswith(f"Not a usable bundle: {tmp_path}")


def test_logic_imports_and_the_card_explains_itself_before_torch_is_installed(tmp_path):
    """Slicer opens the panel before NeoNet's packages are installed: no torch import at module load."""
    code = ("import sys; sys.modules['torch'] = None; import NeoNetSlicerLib.logic; "
            "from NeoNetSlicerLib.base import model_card_text; print(model_card_text(sys.argv[1]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(MODULE)])}
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{tmp_path}: the model card shows once NeoNet's Python packages are installed")


def widget_names_used_by_the_widget_code() -> set[str]:
    return set(re.findall(r"self\.ui\.(\w+)", (MODULE / "NeoNetSlicer.py").read_text()))


@pytest.fixture(scope="module")
def qt_app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    widgets = pytest.importorskip("PySide6.QtWidgets")
    app = widgets.QApplication.instance() or widgets.QApplication([])
    yield app


def load_ui(stand_ins: bool = False):
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader

    loader = QUiLoader()
    if stand_ins:
        for cls in _stand_in_classes():
            loader.registerCustomWidget(cls)
    ui_file = QFile(str(MODULE / "Resources" / "UI" / "NeoNetSlicer.ui"))
    assert ui_file.open(QFile.ReadOnly)
    widget = loader.load(ui_file)
    ui_file.close()
    assert widget is not None, loader.errorString()
    return widget


def test_ui_has_every_widget_the_widget_code_uses(qt_app):
    """Slicer's custom widgets (qMRMLNodeComboBox, ctkPathLineEdit, ...) load as their QWidget base here."""
    from PySide6.QtWidgets import QWidget

    widget = load_ui()
    names = {w.objectName() for w in widget.findChildren(QWidget)}
    used = widget_names_used_by_the_widget_code()
    assert len(used) >= 15  # the regex found the Widget's references
    assert sorted(used - names) == []


def test_panel_preview_png(qt_app, tmp_path):
    """A PNG of the panel (stand-ins draw Slicer's custom widgets); kept once in Resources/Screenshots."""
    from PySide6.QtWidgets import QComboBox

    widget = load_ui(stand_ins=True)
    volume = widget.findChild(QComboBox, "inputVolumeSelector")
    volume.addItem("NeoNetPhantom")
    widget.findChild(QComboBox, "tumourSelector").setCurrentIndex(0)
    widget.resize(430, 820)
    widget.show()
    qt_app.processEvents()
    image = widget.grab().toImage()
    path = tmp_path / "panel.png"
    assert image.save(str(path))
    assert path.stat().st_size > 5000 and image.width() == 430
    shipped = ROOT / "Resources" / "Screenshots" / "panel.png"
    if not shipped.exists():
        shipped.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, shipped)


def _stand_in_classes():
    """Qt widgets named like Slicer's custom widgets, only so the preview draws something similar."""
    from PySide6.QtCore import Property, Qt
    from PySide6.QtWidgets import QComboBox, QGroupBox, QLineEdit, QSlider, QWidget

    class ctkCollapsibleButton(QGroupBox):  # noqa: N801
        def _text(self):
            return self.title()

        def _set_text(self, text):
            self.setTitle("▼ " + text)

        text = Property(str, _text, _set_text)
        collapsed = Property(bool, lambda self: False, lambda self, value: None)

    class qMRMLNodeComboBox(QComboBox):  # noqa: N801
        def _none(self):
            return self.itemText(0)

        def _set_none(self, text):
            self.insertItem(0, text)

        noneDisplay = Property(str, _none, _set_none)

    class ctkPathLineEdit(QLineEdit):  # noqa: N801
        settingKey = Property(str, lambda self: "", lambda self, value: None)

    class qMRMLWidget(QWidget):  # noqa: N801
        pass

    class qMRMLSequenceBrowserSeekWidget(QSlider):  # noqa: N801
        def __init__(self, parent=None):
            super().__init__(Qt.Horizontal, parent)

    return [ctkCollapsibleButton, qMRMLNodeComboBox, ctkPathLineEdit, qMRMLWidget, qMRMLSequenceBrowserSeekWidget]
