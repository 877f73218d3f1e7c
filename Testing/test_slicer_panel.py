"""The panel's Qt-free presenter and the dependency installer, with plain pytest (no Qt, no MRML scene).

Runs on Python 3.9 too (Slicer 5.6/5.8's Python, CI's version-gate stage): the panel must open there and
say which Slicer NeoNet needs. Slicer's own installers (``slicer.packaging``, the PyTorch extension)
cannot run outside Slicer; :func:`slicer_stand_ins` puts small recording stand-ins in their place,
named as such, to check what NeoNet hands them.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "NeoNetSlicer")) if p not in sys.path]

from NeoNetSlicerLib import dependencies, panel  # noqa: E402
from NeoNetSlicerLib.panel import Settings, button_states, device_choices, explain, resolve_auto  # noqa: E402


# --- settings ---------------------------------------------------------------------------------------
def stored(values: dict):
    """``value(key)`` as QSettings answers after a restart: every value a string, absent keys None."""
    return lambda key: None if key not in values else str(values[key]).lower() if isinstance(values[key], bool) else str(values[key])


def test_settings_round_trip_through_strings():
    saved = Settings("/data/bundle.zip", "cuda:3", 9, "PNI-", False, 30).items()
    assert saved["NeoNetSlicer/Device"] == "cuda:3" and saved["NeoNetSlicer/ShowAttention"] is False
    assert Settings.load(stored(saved)) == Settings("/data/bundle.zip", "cuda:3", 9, "PNI-", False, 30)
    assert Settings.load(stored({})) == Settings()


def test_settings_from_an_earlier_version_and_damaged_entries():
    old = {"NeoNetSlicer/Device": "CUDA", "NeoNetSlicer/GpuIndex": 2, "NeoNetSlicer/PatchCount": "many",
           "NeoNetSlicer/Opacity": 250}
    loaded = Settings.load(stored(old))
    assert (loaded.Device, loaded.PatchCount, loaded.Opacity) == ("cuda:2", 4, 100)
    assert Settings.load(stored({"NeoNetSlicer/Device": "CPU"})).Device == "cpu"


# --- buttons ----------------------------------------------------------------------------------------
def test_buttons():
    idle = button_states(busy=False, has_volume=True, has_result=False)
    assert idle["predict"] and not idle["cancel"] and not idle["export"]
    running = button_states(busy=True, has_volume=True, has_result=True)
    assert not running["predict"] and running["cancel"] and not running["export"] and running["centre"]
    assert not any(button_states(False, False, False)[k] for k in ("localize", "generate", "predict"))
    assert not button_states(False, True, False, blocked="old Slicer")["predict"]


# --- the result in words ----------------------------------------------------------------------------
def test_explanation_puts_probability_threshold_and_label_side_by_side():
    e = explain(0.2741, 0.2540, "PNI+", 0.119)
    assert e.headline == "p(PNI) 0.27 ≥ threshold 0.25 -> PNI+"
    assert e.borderline and "high" in e.uncertainty and "0.04 to 0.51" in e.uncertainty
    assert e.text().splitlines()[-1] == panel.NOT_CLINICAL and "BORDERLINE" in e.text()
    clear = explain(0.91, 0.25, "PNI+", 0.01)
    assert not clear.borderline and clear.uncertainty.startswith("±0.01 (low")
    below = explain(0.10, 0.25, "PNI-", 0.03)
    assert below.headline == "p(PNI) 0.10 < threshold 0.25 -> PNI-" and "moderate" in below.uncertainty


def test_explanation_never_prints_a_wrong_looking_comparison():
    assert explain(0.2496, 0.25, "PNI-", None).headline == "p(PNI) 0.2496 < threshold 0.2500 -> PNI-"
    untested = explain(0.3, 0.25, "PNI+", None)
    assert "not measured" in untested.uncertainty and not untested.borderline


def test_not_assessable_is_said_first():
    e = explain(0.6, 0.25, "PNI+", 0.02, assessable=False, reasons=["the tumour touches the image border"])
    lines = e.text().splitlines()
    assert lines[0] == "NOT ASSESSABLE" and "Not assessable: the tumour touches the image border" in lines


# --- devices ----------------------------------------------------------------------------------------
def test_device_choices_name_the_gpus_and_keep_a_stored_device():
    probe = {"cuda": ["NVIDIA H200", "NVIDIA A100"], "mps": False}
    assert device_choices(probe) == [("auto", "auto"), ("CPU", "cpu"), ("CUDA 0: NVIDIA H200", "cuda:0"), ("CUDA 1: NVIDIA A100", "cuda:1")]
    assert device_choices({"cuda": [], "mps": True})[-1] == ("MPS (Apple GPU)", "mps")
    assert device_choices(None, "cuda:3")[-1] == ("cuda:3 (not found)", "cuda:3")
    assert [resolve_auto("auto", p) for p in (probe, {"cuda": [], "mps": True}, {"cuda": []}, None)] == ["cuda:0", "mps", "cpu", "auto"]
    assert resolve_auto("cuda:1", probe) == "cuda:1" and panel.device_label("cuda:1", probe) == "cuda:1 (NVIDIA A100)"


# --- Python version --------------------------------------------------------------------------------
def test_old_slicer_python_is_named_with_the_slicer_it_needs():
    message = panel.python_problem((3, 9))
    assert "3D Slicer 5.10 or newer" in message and "Python is 3.9" in message
    assert panel.python_problem((3, 12)) is None


def test_this_python_is_the_one_the_gate_expects():
    """The gate agrees with the interpreter: on 3.9 (CI's Slicer-5.8 stage) installs are refused."""
    if sys.version_info < (3, 10):
        with pytest.raises(RuntimeError, match="5.10"):
            dependencies.ensure(lambda message: True)
    else:
        assert panel.python_problem() is None


# --- the installer: what reaches Slicer's pip -------------------------------------------------------
@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """Recording stand-ins for Slicer's ``slicer.packaging`` (a submodule ``import slicer`` does not load,
    as in Slicer) and the PyTorch extension's ``PyTorchUtils``. Returns ``(pip calls, torch calls)``."""
    package = tmp_path / "slicer"
    package.mkdir()
    (package / "packaging.py").write_text("calls = []\ndef pip_install(arguments):\n    calls.append(arguments)\n")
    try:
        import slicer
    except ImportError:  # Python 3.9: no slicer-core wheel; an empty package stands for Slicer's
        (package / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        import slicer
    monkeypatch.setattr(slicer, "__path__", [*slicer.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    torch_calls = []
    torch_utils = types.ModuleType("PyTorchUtils")
    torch_utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(installTorch=lambda **kw: torch_calls.append(kw) or "torch")
    monkeypatch.setitem(sys.modules, "PyTorchUtils", torch_utils)
    yield (lambda: sys.modules["slicer.packaging"].calls if "slicer.packaging" in sys.modules else []), torch_calls
    sys.modules.pop("slicer.packaging", None)


needs_310 = pytest.mark.skipif(sys.version_info < (3, 10), reason="installs are refused on this Python (version-gate test)")


@needs_310
def test_one_question_then_the_pytorch_extension_then_pip(stand_ins):
    pip_calls, torch_calls = stand_ins
    questions = []
    assert dependencies.ensure(lambda message: questions.append(message) or True, requirements=["torch>=999", "no-such-package-neonet>=1"])
    assert len(questions) == 1 and "torch>=999" in questions[0] and "no-such-package-neonet>=1" in questions[0]
    assert torch_calls == [{"askConfirmation": False, "torchVersionRequirement": ">=999"}]  # the extension asks nothing more
    assert pip_calls() == [["no-such-package-neonet>=1"]]


def test_pip_gets_a_list_and_a_windows_wheel_folder_keeps_its_backslashes(stand_ins):
    pip_calls, _ = stand_ins
    folder = Path(r"C:\Users\Dr Smith\wheels")
    dependencies.pip_install(dependencies.pip_arguments(["monai>=1.4"], folder))
    assert pip_calls() == [["--no-index", "--find-links", str(folder), "monai>=1.4"]]


@needs_310
def test_declining_installs_nothing(stand_ins):
    pip_calls, torch_calls = stand_ins
    assert dependencies.ensure(lambda message: False, requirements=["no-such-package-neonet>=1"]) is False
    assert pip_calls() == [] and torch_calls == []


@needs_310
def test_nothing_missing_asks_nothing(stand_ins):
    assert dependencies.ensure(lambda message: pytest.fail("asked"), requirements=["packaging>=1"])


# --- sample data registration ----------------------------------------------------------------------
SLICER_5_6_REGISTER = {"category", "sampleName", "uris", "fileNames", "nodeNames", "customDownloader", "thumbnailFileName",
                       "loadFileType", "loadFiles", "loadFileProperties", "checksums"}


def test_sample_data_arguments_are_accepted_by_slicer_5_6():
    """Slicer 5.6's ``registerCustomSampleDataSource`` keyword names (SampleData.py of that release);
    newer releases accept ``loadFileType`` too (mapped to ``loadFileTypes``)."""
    from NeoNetSlicerLib.sampledata import registration_arguments

    assert set(registration_arguments()) <= SLICER_5_6_REGISTER
