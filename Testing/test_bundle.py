"""Model bundles: round trip, hash verification, refusing pickles and unknown formats."""

import json
import pickle

import pytest
import torch
from torch import nn

from neonet_core.bundle import add_network, load_bundle, new_bundle_info, write_bundle_info, zip_bundle
from neonet_core.errors import BundleError


def _make_bundle(path):
    torch.manual_seed(0)
    net = nn.Conv3d(1, 2, 3)
    info = new_bundle_info({"preset": "tiny"}, threshold=0.4)
    add_network(path, info, "seg", net.state_dict(), {"kind": "conv", "channels": 2})
    write_bundle_info(path, info)
    return net


def test_round_trip_gives_identical_outputs(tmp_path):
    net = _make_bundle(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    assert bundle.info["threshold"] == 0.4 and bundle.network_config("seg")["channels"] == 2
    copy = bundle.load_into("seg", nn.Conv3d(1, 2, 3))
    x = torch.randn(1, 1, 5, 5, 5)
    torch.testing.assert_close(copy(x), net(x), rtol=0, atol=0)
    zipped = load_bundle(zip_bundle(tmp_path / "b", tmp_path / "b.zip"))
    torch.testing.assert_close(zipped.load_into("seg", nn.Conv3d(1, 2, 3))(x), net(x), rtol=0, atol=0)


def test_changed_weight_file_is_refused_when_its_network_is_loaded(tmp_path):
    """A flipped byte in one network's weights: that network and ``verify`` refuse, the others load."""
    _make_bundle(tmp_path / "b")
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    add_network(tmp_path / "b", info, "ldm", nn.Conv3d(1, 1, 1).state_dict(), {"kind": "conv"})
    write_bundle_info(tmp_path / "b", info)
    weights = tmp_path / "b" / "ldm.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    bundle = load_bundle(tmp_path / "b")
    bundle.load_into("seg", nn.Conv3d(1, 2, 3))
    with pytest.raises(BundleError, match="SHA-256 mismatch for network 'ldm'"):
        bundle.state_dict("ldm")
    with pytest.raises(BundleError, match="SHA-256 mismatch for network 'ldm'"):
        load_bundle(tmp_path / "b").verify()
    with pytest.raises(BundleError, match="SHA-256 mismatch"):
        zip_bundle(tmp_path / "b", tmp_path / "b.zip")


def test_pickle_in_place_of_safetensors_is_never_unpickled(tmp_path):
    _make_bundle(tmp_path / "b")
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    weights = tmp_path / "b" / "seg.safetensors"
    weights.write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    from neonet_core.bundle import sha256_file

    info["networks"]["seg"]["sha256"] = sha256_file(weights)  # an attacker can fix the hash too
    write_bundle_info(tmp_path / "b", info)
    with pytest.raises(BundleError, match="not a readable safetensors"):
        load_bundle(tmp_path / "b").state_dict("seg")


def test_unknown_version_missing_network_and_bad_folder(tmp_path):
    _make_bundle(tmp_path / "b")
    info = json.loads((tmp_path / "b" / "bundle.json").read_text())
    with pytest.raises(BundleError, match="has no network 'cls'"):
        load_bundle(tmp_path / "b").state_dict("cls")
    info["format_version"] = 99
    write_bundle_info(tmp_path / "b", info)
    with pytest.raises(BundleError, match="unknown format version 99"):
        load_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="not a NeoNet bundle"):
        load_bundle(tmp_path)
    (tmp_path / "b" / "seg.safetensors").unlink()
    info["format_version"] = 1
    write_bundle_info(tmp_path / "b", info)
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "b")
