"""A test shim, not Slicer: PythonQt-style ``qt``/``ctk`` modules over PySide6 and stand-ins for the compiled
Slicer/CTK widgets NeoNetSlicer's .ui uses, so that (with :mod:`slicer_app_shim`) the real ``NeoNetSlicer.py``
Widget runs offscreen over a real MRML scene (slicer-core wheel) and ``slicer.util`` (the wheel's own).

PythonQt conventions reproduced: Qt properties read and written as attributes (``button.enabled = False``,
``label.text``), ``obj.connect("signal(args)", slot)``, ``widget.name`` for the object name.
The Slicer widgets here implement only what the panel uses, after the Slicer sources:
qMRMLNodeComboBox (node types, child types, none item, hidden-from-editors, ``sortFilterProxyModel()``
with ``hiddenNodeIDs``, first node auto-selected when none is enabled), ctkPathLineEdit (``currentPath``,
``currentPathChanged`` on every change), ctkCollapsibleButton, qMRMLSequenceBrowserSeekWidget, qMRMLWidget.
"""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET

from PySide6 import QtCore, QtGui, QtUiTools, QtWidgets
from PySide6.QtCore import Property, Signal

_PROPERTIES: dict[type, frozenset] = {}


class PythonQtStyle:
    """Mixin: Qt properties as attributes, ``connect("name(args)", slot)``, ``name`` = objectName."""

    SIGNAL_ALIASES: dict = {}

    def __getattribute__(self, name):
        if name[0] != "_" and name in _properties(self):
            return QtCore.QObject.property(self, name)
        if name == "name":
            return QtCore.QObject.objectName(self)
        if name == "connect":  # PySide resolves it to QObject's static one
            return types.MethodType(PythonQtStyle.connect, self)
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        if name in _properties(self):
            if not QtCore.QObject.setProperty(self, name, value):
                raise AttributeError(f"{type(self).__name__}.{name}: Qt refused the value {value!r}")
        elif name == "name":
            QtCore.QObject.setObjectName(self, value)
        else:
            super().__setattr__(name, value)

    def _signal(self, signature: str):
        name = self.SIGNAL_ALIASES.get(signature, signature.split("(")[0])
        return super().__getattribute__(name)

    def connect(self, signature, slot):
        self._signal(signature).connect(slot)
        return True


def _properties(obj) -> frozenset:
    cls = type(obj)
    if cls not in _PROPERTIES:
        meta = QtCore.QObject.metaObject(obj)
        _PROPERTIES[cls] = frozenset(meta.property(i).name() for i in range(meta.propertyCount()))
    return _PROPERTIES[cls]


_WRAPPED: dict[type, type] = {}


def pythonqt_class(base: type) -> type:
    """``base`` (a PySide6 QObject class) with PythonQt conventions."""
    if base not in _WRAPPED:
        _WRAPPED[base] = type(base.__name__, (PythonQtStyle, base), {})
    return _WRAPPED[base]


# --- stand-ins for Slicer's and CTK's compiled widgets -----------------------------------------------
class qMRMLWidget(PythonQtStyle, QtWidgets.QWidget):  # noqa: N801
    mrmlSceneChanged = Signal(object)

    def setMRMLScene(self, scene):
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return getattr(self, "_scene", None)


class SortFilterProxyModel(PythonQtStyle, QtCore.QObject):
    """The part of qMRMLSortFilterProxyModel the panel uses: ``hiddenNodeIDs``."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._hidden = []

    def _get_hidden(self):
        return list(self._hidden)

    def _set_hidden(self, ids):
        self._hidden = [str(i) for i in ids]
        self.changed.emit()

    hiddenNodeIDs = Property("QStringList", _get_hidden, _set_hidden)


class qMRMLNodeComboBox(PythonQtStyle, QtWidgets.QComboBox):  # noqa: N801
    currentNodeChanged = Signal(object)
    currentNodeChangedBool = Signal(bool)
    currentNodeIDChanged = Signal(str)
    SIGNAL_ALIASES = {"currentNodeChanged(bool)": "currentNodeChangedBool"}

    def __init__(self, parent=None):
        super().__init__(parent)
        self._types, self._none, self._none_text, self._child_types = [], False, "None", True
        self._scene, self._current = None, None
        self._proxy = SortFilterProxyModel(self)
        self._proxy.changed.connect(self._refresh)
        super().__getattribute__("currentIndexChanged").connect(self._index_changed)
        observed = self._observed = []  # (scene, tag): dropped when the widget is destroyed
        super().__getattribute__("destroyed").connect(lambda *args: [scene.RemoveObserver(tag) for scene, tag in observed])

    def _prop(name, kind, default_attr):  # noqa: N805  (class-body helper)
        def get(self):
            return getattr(self, default_attr)

        def set_(self, value):
            setattr(self, default_attr, list(value) if kind == "QStringList" else value)
            self._refresh()

        return Property(kind, get, set_)

    nodeTypes = _prop("nodeTypes", "QStringList", "_types")
    noneEnabled = _prop("noneEnabled", bool, "_none")
    noneDisplay = _prop("noneDisplay", str, "_none_text")
    showChildNodeTypes = _prop("showChildNodeTypes", bool, "_child_types")
    addEnabled = Property(bool, lambda self: False, lambda self, value: None)
    removeEnabled = Property(bool, lambda self: False, lambda self, value: None)
    del _prop

    def setMRMLScene(self, scene):
        for old, tag in self._observed:
            old.RemoveObserver(tag)
        self._observed.clear()
        self._scene = scene
        if scene is not None:  # as qMRMLSceneModel: nodes added while a scene is imported come in once it is
            for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent, scene.EndImportEvent):
                self._observed.append((scene, scene.AddObserver(event, lambda *args: scene.IsImporting() or self._refresh())))
        self._refresh()

    def mrmlScene(self):
        return self._scene

    def sortFilterProxyModel(self):
        return self._proxy

    def _accepts(self, node) -> bool:
        if node.GetHideFromEditors() or node.GetID() in self._proxy._hidden:
            return False
        if self._child_types:
            return any(node.IsA(t) for t in self._types)
        return node.GetClassName() in self._types

    def _rows(self):
        found = []
        if self._scene is not None:
            for n in range(self._scene.GetNumberOfNodes()):
                node = self._scene.GetNthNode(n)
                if self._accepts(node):
                    found.append(node)
        return ([None] if self._none else []) + found

    def _refresh(self):
        rows = self._rows()
        current = self._current if self._current in rows else None
        if current is None and not self._none and any(rows):
            current = rows[0]  # QComboBox selects the first row of a filled list
        self.blockSignals(True)
        QtWidgets.QComboBox.clear(self)
        for node in rows:
            QtWidgets.QComboBox.addItem(self, self._none_text if node is None else node.GetName())
        QtWidgets.QComboBox.setCurrentIndex(self, rows.index(current) if current in rows else -1)
        self.blockSignals(False)
        self._set_current(current)

    def _index_changed(self, index):
        rows = self._rows()
        self._set_current(rows[index] if 0 <= index < len(rows) else None)

    def _set_current(self, node):
        if node is not self._current:
            self._current = node
            self.currentNodeChanged.emit(node)
            self.currentNodeChangedBool.emit(node is not None)
            self.currentNodeIDChanged.emit(node.GetID() if node is not None else "")

    def currentNode(self):
        return self._current

    def setCurrentNode(self, node):
        rows = self._rows()
        if node in rows or node is None:
            QtWidgets.QComboBox.setCurrentIndex(self, rows.index(node) if node in rows else -1)
            self._set_current(node if node in rows else None)


class ctkPathLineEdit(PythonQtStyle, QtWidgets.QLineEdit):  # noqa: N801
    currentPathChanged = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._filters = 0
        super().__getattribute__("textChanged").connect(lambda text: self.currentPathChanged.emit(text))

    currentPath = Property(str, lambda self: QtWidgets.QLineEdit.text(self), lambda self, p: QtWidgets.QLineEdit.setText(self, p))
    filters = Property(int, lambda self: self._filters, lambda self, v: setattr(self, "_filters", v))


class ctkCollapsibleButton(PythonQtStyle, QtWidgets.QGroupBox):  # noqa: N801
    def __init__(self, parent=None):
        super().__init__(parent)
        self._collapsed = False

    text = Property(str, lambda self: QtWidgets.QGroupBox.title(self), lambda self, t: QtWidgets.QGroupBox.setTitle(self, t))
    collapsed = Property(bool, lambda self: self._collapsed, lambda self, v: setattr(self, "_collapsed", bool(v)))


class qMRMLSequenceBrowserSeekWidget(PythonQtStyle, QtWidgets.QSlider):  # noqa: N801
    def __init__(self, parent=None):
        super().__init__(QtCore.Qt.Horizontal, parent)
        self._browser = None
        super().__getattribute__("valueChanged").connect(self._seek)

    def setMRMLScene(self, scene):
        pass

    def setMRMLSequenceBrowserNode(self, browser):
        self._browser = browser
        count = browser.GetNumberOfItems() if browser is not None else 0
        QtWidgets.QSlider.setRange(self, 0, max(count - 1, 0))
        QtWidgets.QSlider.setValue(self, browser.GetSelectedItemNumber() if browser is not None else 0)

    def _seek(self, value):
        if self._browser is not None:
            self._browser.SetSelectedItemNumber(int(value))


SLICER_WIDGETS = {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, ctkPathLineEdit, ctkCollapsibleButton,
                                                 qMRMLSequenceBrowserSeekWidget)}


class UiLoader(QtUiTools.QUiLoader):
    """QUiLoader making PythonQt-style widgets (Slicer's own classes from the stand-ins above), then
    making the .ui's ``<connections>`` by name (the .ui names C++ signatures no PySide signal has)."""

    def createWidget(self, class_name, parent=None, name=""):
        cls = SLICER_WIDGETS.get(class_name) or pythonqt_class(getattr(QtWidgets, class_name))
        widget = cls(parent)
        widget.setObjectName(name)
        return widget

    def load(self, qfile, parent=None):
        root = ET.parse(QtCore.QFile.fileName(qfile)).getroot()
        text = ET.tostring(root).replace(ET.tostring(root.find("connections")), b"")
        buffer = QtCore.QBuffer()
        buffer.setData(QtCore.QByteArray(text))
        buffer.open(QtCore.QIODevice.ReadOnly)
        widget = super().load(buffer, parent)
        named = {QtCore.QObject.objectName(w): w for w in widget.findChildren(QtCore.QObject)}
        named[QtCore.QObject.objectName(widget)] = widget
        for c in root.iter("connection"):
            sender, receiver = named[c.findtext("sender")], named[c.findtext("receiver")]
            sender.connect(c.findtext("signal"), getattr(receiver, c.findtext("slot").split("(")[0]))
        return widget


# --- the qt and ctk modules ---------------------------------------------------------------------------
def _module(name: str, extra: dict) -> types.ModuleType:
    module = types.ModuleType(name, f"PythonQt-style {name} module over PySide6 (test shim)")
    module.__dict__.update(extra)

    def getattr_(attr):
        for source in (QtWidgets, QtCore, QtGui):
            if hasattr(source, attr):
                value = getattr(source, attr)
                if isinstance(value, type) and issubclass(value, QtCore.QObject):
                    value = pythonqt_class(value)
                setattr(module, attr, value)
                return value
        raise AttributeError(f"module {name!r} (test shim) has no attribute {attr!r}")

    module.__getattr__ = getattr_
    return module


def modules() -> tuple[types.ModuleType, types.ModuleType]:
    """The ``qt`` and ``ctk`` modules (PythonQt style) the module code imports."""
    return _module("qt", {"QUiLoader": UiLoader}), _module("ctk", {k: v for k, v in SLICER_WIDGETS.items() if k.startswith("ctk")})
