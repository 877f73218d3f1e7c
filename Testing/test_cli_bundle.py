"""neonet bundle info / verify through the real CLI entry point."""

import subprocess
import sys

import torch
from torch import nn

from neonet_core.bundle import add_network, new_bundle_info, write_bundle_info


def _neonet(*args):
    return subprocess.run([sys.executable, "-m", "neonet_core.cli.main", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_info_and_verify_then_tampering_fails(tmp_path):
    info = new_bundle_info({"preset": "tiny", "preprocess": {"roi_mm": 64, "patch_size": 32}}, threshold=0.42)
    add_network(tmp_path / "b", info, "seg", nn.Conv3d(1, 1, 3).state_dict(), {"channels": [1]})
    write_bundle_info(tmp_path / "b", info)

    shown = _neonet("bundle", "info", tmp_path / "b")
    assert shown.returncode == 0 and "decision threshold: 0.420" in shown.stdout and "networks: seg" in shown.stdout
    verified = _neonet("bundle", "verify", tmp_path / "b")
    assert verified.returncode == 0 and "seg: 2 tensors, 28 parameters, SHA-256 ok" in verified.stdout

    (tmp_path / "b" / "seg.safetensors").write_bytes(b"not weights")
    broken = _neonet("bundle", "verify", tmp_path / "b")
    assert broken.returncode == 1 and broken.stdout == ""
    assert broken.stderr.strip().endswith("SHA-256 mismatch for network 'seg': the file was changed or is corrupt")
    assert len(broken.stderr.strip().splitlines()) == 1
