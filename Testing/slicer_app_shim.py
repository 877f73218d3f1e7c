"""A test shim, not Slicer: ``slicer.app`` and the ``slicer.ScriptedLoadableModule`` base classes, reduced to what
a scripted module uses, after Slicer's Base/Python/slicer/ScriptedLoadableModule.py; :func:`install` puts them,
and :mod:`pythonqt_shim`'s ``qt`` and ``ctk`` modules, in place (:func:`uninstall` takes them away again)."""

from __future__ import annotations

import sys
import types
import unittest
from pathlib import Path

from PySide6 import QtWidgets

import pythonqt_shim
from pythonqt_shim import SLICER_WIDGETS, qMRMLWidget


class App:
    """``slicer.app`` for a scripted module outside the application (test shim)."""

    applicationName = "Slicer (PySide6 test shim)"

    def __init__(self, app_logic):
        self._app_logic = app_logic

    def applicationLogic(self):
        return self._app_logic

    def testingEnabled(self):
        return True  # message boxes return their testing answer instead of blocking

    def processEvents(self, *args):
        QtWidgets.QApplication.processEvents()

    def topLevelWidgets(self):
        return []

    def connect(self, signature, slot):
        return True



class ScriptedLoadableModule:
    def __init__(self, parent):
        super().__init__()
        self.parent, self.moduleName = parent, type(self).__name__

    def resourcePath(self, filename):
        return str(Path(self.parent.path).parent / "Resources" / filename)


class ScriptedLoadableModuleWidget:
    """As Slicer's: without a parent it makes a qMRMLWidget with a layout on ``slicer.mrmlScene``, runs
    ``setup()`` and shows it."""

    def __init__(self, parent=None):
        import slicer

        super().__init__()
        self.moduleName = type(self).__name__[: -len("Widget")]
        self.developerMode = False
        if parent is None:
            self.parent = qMRMLWidget()
            self.parent.setLayout(QtWidgets.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        else:
            self.parent = parent
        self.layout = self.parent.layout()
        if parent is None:
            self.setup()
            self.parent.show()

    def resourcePath(self, filename):
        import slicer

        return str(Path(slicer.util.modulePath(self.moduleName)).parent / "Resources" / filename)

    def setup(self):
        pass

    def cleanup(self):
        pass

    def onReload(self):
        """As slicer.util.reloadScriptedModule, reduced to its core: the module file imported afresh."""
        import importlib

        sys.modules.pop(self.moduleName, None)
        importlib.import_module(self.moduleName)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        super().__init__()
        self.moduleName = type(self).__name__[: -len("Logic")]

    def getParameterNode(self):
        """As Slicer's: the module's singleton vtkMRMLScriptedModuleNode in ``slicer.mrmlScene`` (made when missing)."""
        import slicer

        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None):
        print(message)


def install(app_logic, module_file: Path) -> dict:
    """Put the shim in place (``qt``, ``ctk``, ``slicer.app``, ``slicer.ScriptedLoadableModule``, module path).
    Returns what :func:`uninstall` needs."""
    import slicer

    qt, ctk = pythonqt_shim.modules()
    slm = types.ModuleType("slicer.ScriptedLoadableModule", "test shim")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    saved = {name: sys.modules.get(name) for name in ("qt", "ctk", "slicer.ScriptedLoadableModule")}
    sys.modules.update({"qt": qt, "ctk": ctk, "slicer.ScriptedLoadableModule": slm})
    name = Path(module_file).stem
    slicer.app = App(app_logic)
    slicer.ScriptedLoadableModule = slm
    slicer.modules = types.SimpleNamespace(**{name.lower(): types.SimpleNamespace(path=str(module_file))})
    for cls_name, cls in SLICER_WIDGETS.items():
        setattr(slicer, cls_name, cls)
    return saved


def uninstall(saved: dict) -> None:
    import slicer

    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    for attr in ("app", "ScriptedLoadableModule", "modules", *SLICER_WIDGETS):
        if hasattr(slicer, attr):
            delattr(slicer, attr)
