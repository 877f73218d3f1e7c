"""The one device option: ``--device auto|cpu|cuda|cuda:N|mps``, parsed once and handed down.

A device is a run-time choice, never part of a config: every command adds the option with
:func:`add_device_option`, resolves it once with :func:`resolve_device` and passes the
``torch.device`` to the library functions it calls.
"""

from __future__ import annotations

import argparse
import re

import torch

from neonet_core.errors import NeoNetError

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (default auto: CUDA, else MPS, else CPU)"
_AUTO = ": CUDA, else MPS, else CPU"
_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """``name`` if it is a device name this option accepts, else NeoNetError naming the choices."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise NeoNetError(f"--device {name!r}: not a device; use {DEVICE_HELP.split(' (')[0]}")
    return name


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda if available, else mps, else cpu; explicit names are checked against this machine."""
    if isinstance(name, torch.device):
        return name
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NeoNetError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NeoNetError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise NeoNetError(f"--device {name}: Apple MPS is not available on this machine")
    return device


def _argparse_device(value: str) -> str:
    try:
        return check_device_name(value)
    except NeoNetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """Add ``--device`` to ``parser`` (checked when parsed; resolved by the command with resolve_device)."""
    parser.add_argument("--device", type=_argparse_device, default=default, metavar="DEVICE",
                        help=DEVICE_HELP.replace(f"default auto{_AUTO}", f"default {default}{_AUTO if default == 'auto' else ''}"))


__all__ = ["resolve_device", "add_device_option", "check_device_name", "DEVICE_HELP"]
