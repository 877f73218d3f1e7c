"""The panel's state without Qt (the Widget only copies it onto widgets): stored settings, which buttons
are enabled, the result in words, and the device choices. Plain Python; runs on Python 3.9 too, so the
panel can open in an old Slicer and say which Slicer it needs."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Optional

PREFIX = "NeoNetSlicer/"
NOT_CLINICAL = "Research software: not for clinical use."
MIN_PYTHON = (3, 10)
MIN_SLICER = "5.10"  # the first Slicer release with Python 3.12 (5.6 and 5.8 embed Python 3.9)


def python_problem(version=None) -> Optional[str]:
    """Why this Python cannot run NeoNet (None when it can)."""
    version = tuple(version or sys.version_info[:2])
    if version >= MIN_PYTHON:
        return None
    return (f"NeoNet needs 3D Slicer {MIN_SLICER} or newer: this Slicer's Python is "
            f"{version[0]}.{version[1]}, and the PyTorch NeoNet is tested with (2.13) needs Python "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer.")


# --- settings -----------------------------------------------------------------------------------------
@dataclass
class Settings:
    """What the panel remembers between sessions (QSettings under ``NeoNetSlicer/``)."""

    BundlePath: str = ""
    Device: str = "auto"  # auto, cpu, cuda:N or mps: what the CLI's --device takes
    PatchCount: int = 4
    PatchClass: str = "PNI+"
    ShowAttention: bool = True
    Opacity: int = 50  # percent

    @classmethod
    def load(cls, value: Callable[[str], object]) -> "Settings":
        """Read with ``value(key) -> stored value or None`` (QSettings gives strings back after a restart)."""
        out = cls()
        for f in fields(cls):
            stored = value(PREFIX + f.name)
            if stored is not None:
                try:
                    setattr(out, f.name, _convert(stored, f.type))
                except ValueError:
                    pass  # a damaged entry keeps its default
        if out.Device in ("CPU", "CUDA", "MPS"):  # stored by earlier versions: a combo label (+ GpuIndex)
            index = value(PREFIX + "GpuIndex")
            out.Device = f"cuda:{int(index or 0)}" if out.Device == "CUDA" else out.Device.lower()
        out.PatchCount = min(max(out.PatchCount, 1), 64)
        out.Opacity = min(max(out.Opacity, 0), 100)
        return out

    def items(self) -> dict:
        """``{key: value}`` to store."""
        return {PREFIX + k: v for k, v in asdict(self).items()}


def _convert(value, kind: str):
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1")
    if kind == "int":
        return int(value)
    return str(value)


# --- the scene's parameter node (vtkMRMLScriptedModuleNode) -----------------------------------------------
def read_parameters(node) -> dict:
    """What the module's parameter node holds: input and tumour nodes, segment ID, bundle path, device."""
    return {"InputVolume": node.GetNodeReference("InputVolume"), "Tumour": node.GetNodeReference("Tumour"),
            **{key: node.GetParameter(key) or "" for key in ("TumourSegment", "Bundle", "Device")}}


def write_parameters(node, volume, tumour, segment: Optional[str], bundle: str, device: str) -> None:
    node.SetNodeReferenceID("InputVolume", volume.GetID() if volume is not None else None)
    node.SetNodeReferenceID("Tumour", tumour.GetID() if tumour is not None else None)
    for key, value in (("TumourSegment", segment or ""), ("Bundle", bundle), ("Device", device)):
        node.SetParameter(key, value)


# --- buttons ------------------------------------------------------------------------------------------
def button_states(busy: bool, has_volume: bool, has_result: bool, blocked: Optional[str] = None) -> dict:
    """Which controls are enabled: jobs need a volume and no running job; ``blocked`` (a reason) stops all."""
    can_run = not busy and has_volume and blocked is None
    return {"localize": can_run, "generate": can_run, "predict": can_run, "cancel": busy,
            "export": has_result and not busy, "centre": has_result, "table": has_result}


def job_status(job, what: str, probe: Optional[dict]) -> tuple:
    """``(status line, level)`` for a finished :class:`~NeoNetSlicerLib.jobs.Job`; level: "", "warning" or "error"."""
    if job.error == "cancelled":
        return "Cancelled.", ""
    if job.error:
        return f"{what} failed: {job.error} (Show log: the whole log and the kept work folder)", "error"
    where = f" in {job.seconds:.1f} s on {device_label(job.current_device, probe)}"
    note = f" ({'; '.join(job.warnings)})" if job.warnings else ""
    if job.name == "localize":
        tumour, roi, ml = job.result
        text = f"Tumour found: {ml:.1f} mL (segmentation '{tumour.GetName()}', box '{roi.GetName()}')"
    elif job.name == "generate":
        sequence, _, _, real = job.result
        text = (f"{sequence.GetNumberOfDataNodes()} synthetic patches (left, scroll with the slider) beside the real "
                f"patch '{real.GetName()}' (right)")
    else:
        text = job.result.summary()
    return text + where + note, "warning" if note else ""


# --- the result in words --------------------------------------------------------------------------------
@dataclass
class Explanation:
    headline: str  # "0.27 ≥ 0.25 -> PNI+"
    uncertainty: str  # "±0.12 (high: ...)"
    borderline: bool
    assessable: bool
    notes: list = field(default_factory=list)

    def text(self) -> str:
        lines = [self.headline, f"Uncertainty: {self.uncertainty}"]
        if not self.assessable:
            lines.insert(0, "NOT ASSESSABLE")
        if self.borderline:
            lines.append("BORDERLINE: the test-time augmentation band crosses the threshold.")
        return "\n".join([*lines, *self.notes, NOT_CLINICAL])


def explain(probability: float, threshold: float, label: str, uncertainty: Optional[float],
            assessable: bool = True, reasons=()) -> Explanation:
    """``p`` against the decision threshold, the TTA spread in words, and the flags a reader needs.

    Borderline: the band ``p ± 2 SD`` of the test-time flip variants (about 95% of them) contains the
    threshold, so a flipped copy of the same scan can land on the other side.
    """
    sign = "≥" if probability >= threshold else "<"
    digits = 2
    while digits < 4 and (round(probability, digits) == round(threshold, digits)) != (probability == threshold):
        digits += 1  # never print "0.25 < 0.25"
    headline = f"p(PNI) {probability:.{digits}f} {sign} threshold {threshold:.{digits}f} -> {label}"
    if uncertainty is None:
        return Explanation(headline, "not measured (no test-time augmentation)", False, assessable,
                           [f"Not assessable: {r}" for r in reasons])
    low, high = max(0.0, probability - 2 * uncertainty), min(1.0, probability + 2 * uncertainty)
    word = "low" if uncertainty < 0.02 else "moderate" if uncertainty < 0.05 else "high"
    words = (f"±{uncertainty:.2f} ({word}: p(PNI) over the flipped copies of the scan spreads "
             f"from {low:.2f} to {high:.2f})")
    return Explanation(headline, words, low <= threshold <= high, assessable, [f"Not assessable: {r}" for r in reasons])


# --- devices ----------------------------------------------------------------------------------------
def device_choices(probe: Optional[dict], stored: str = "auto") -> list:
    """``[(label, device)]`` for the device list: auto, CPU, each CUDA GPU by name, MPS when present.

    ``probe``: what :mod:`NeoNetSlicerLib.devices` found (None: not known yet). A stored device that is
    not found stays listed (marked), so a setting is never lost silently.
    """
    choices = [("auto", "auto"), ("CPU", "cpu")]
    probe = probe or {}
    choices += [(f"CUDA {i}: {name}", f"cuda:{i}") for i, name in enumerate(probe.get("cuda", []))]
    if probe.get("mps"):
        choices.append(("MPS (Apple GPU)", "mps"))
    if stored not in [d for _, d in choices]:
        choices.append((f"{stored} (not found)", stored))
    return choices


def resolve_auto(device: str, probe: Optional[dict]) -> str:
    """The device "auto" stands for on this machine (neonet_core.device's rule: CUDA, else MPS, else CPU);
    other devices as given; "auto" itself while nothing was probed."""
    if device != "auto" or not probe:
        return device
    return "cuda:0" if probe.get("cuda") else "mps" if probe.get("mps") else "cpu"


def device_label(device: str, probe: Optional[dict]) -> str:
    """``cuda:1 (NVIDIA H200)``, ``cpu``, ...: a device with its name when known."""
    names = (probe or {}).get("cuda", [])
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if index < len(names):
            return f"{device} ({names[index]})"
    return device
