"""Hostile and damaged bundles (issue 12 items 5, 6 and 7): bundle.json validated and hashed, configs checked
against the weights before anything is allocated, .zip bundles extracted once, only what they name, capped.

Real bundles on disk (a copy of the shipped demo bundle, or a tiny one written here), real zip files, the real
``neonet bundle verify`` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from neonet_core.bundle import add_network, load_bundle, new_bundle_info, write_bundle_info, zip_bundle
from neonet_core.bundle_schema import info_hash
from neonet_core.cli import main as cli_main
from neonet_core.errors import BundleError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "Resources" / "Models" / "neonet-demo"


def tiny_bundle(folder: Path, **extra) -> Path:
    info = new_bundle_info({"preset": "tiny"}, threshold=0.4, class_names=["PNI-", "PNI+"], **extra)
    add_network(folder, info, "seg", nn.Conv3d(1, 2, 3).state_dict(), {"kind": "conv"})
    write_bundle_info(folder, info)
    return folder


def edited(folder: Path, edit, fix_hash: bool = True) -> Path:
    """Edit ``folder``'s bundle.json by hand (``edit(info)`` or a replacement text); by default the content hash
    is fixed afterwards, as an attacker could."""
    path = folder / "bundle.json"
    info = json.loads(path.read_text())
    text = edit(info)
    if text is None:
        if fix_hash:
            info["info_sha256"] = info_hash(info)
        text = json.dumps(info)
    path.write_text(text)
    return folder


def verify(capsys, bundle) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main.main(["--progress", "none", "bundle", "verify", str(bundle)])
    return code, capsys.readouterr().err


# --- item 5: bundle.json validated and hashed --------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("edit, words", [
    (lambda i: i.__setitem__("threshold", float("nan")), "field 'threshold': must be a finite number from 0 to 1"),
    (lambda i: i.__setitem__("threshold", 7.5), "field 'threshold': must be a finite number from 0 to 1, got 7.5"),
    (lambda i: i.__setitem__("threshold", "0.5"), "field 'threshold': must be a finite number from 0 to 1, got \"0.5\""),
    (lambda i: i.__setitem__("class_names", ["PNI-"]), "field 'class_names': must be a list of two short strings"),
    (lambda i: i.__setitem__("networks", [1, 2]), "field 'networks': must be a JSON object"),
    (lambda i: i["networks"]["seg"].__setitem__("file", 3), "field 'networks.seg.file': must name a local .safetensors file"),
    (lambda i: i["networks"]["seg"].__setitem__("file", "../x.safetensors"), "must name a local .safetensors file"),
    (lambda i: i["networks"]["seg"].__setitem__("sha256", "abc"), "field 'networks.seg.sha256': must be 64 lowercase hex digits"),
    (lambda i: i["networks"]["seg"]["config"].__setitem__("lr", float("inf")), "field 'networks.seg.config.lr': must be a finite"),
    (lambda i: i.__setitem__("cohort", nested(10)), "field 'cohort': must be a JSON object"),
    (lambda i: '{"format": "neonet-bundle", "x": ' + nested(100_000) + "}", "is nested too deeply"),
    (lambda i: "{not json", "is not valid JSON"),
])
def test_a_bad_bundle_json_is_refused_naming_the_field(tmp_path, capsys, edit, words):
    bundle = edited(tiny_bundle(tmp_path / "b"), edit)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle)
    assert words in str(err.value) and str(bundle / "bundle.json") in str(err.value) and "\n" not in str(err.value)
    code, err = verify(capsys, bundle)
    assert code == 1 and len(err.strip().splitlines()) == 1 and words in err and "internal error" not in err, err


def test_a_hand_edited_bundle_json_no_longer_matches_its_hash(tmp_path, capsys):
    bundle = edited(tiny_bundle(tmp_path / "b"), lambda i: i.__setitem__("threshold", 0.9), fix_hash=False)
    code, err = verify(capsys, bundle)
    assert code == 1 and "bundle.json: was changed after it was written" in err
    assert load_bundle(tiny_bundle(tmp_path / "c")).info["threshold"] == 0.4  # untouched: loads


def test_a_bundle_json_that_would_not_load_is_never_written(tmp_path):
    info = new_bundle_info({"preset": "tiny"}, threshold=float("nan"))
    with pytest.raises(BundleError, match="field 'threshold'"):
        write_bundle_info(tmp_path, info)
    assert not (tmp_path / "bundle.json").exists()
    info = new_bundle_info({"preset": "tiny"}, threshold=0.3, metrics={"auc": float("nan")})
    write_bundle_info(tmp_path, info)  # a NaN metric is written as null: the file is strict JSON
    assert json.loads((tmp_path / "bundle.json").read_text(), parse_constant=lambda c: pytest.fail(c))["metrics"]["auc"] is None


def test_the_shipped_demo_bundle_passes_verify(capsys):
    code, err = verify(capsys, DEMO)
    assert code == 0, err


# --- item 6: an absurd config never allocates --------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(DEMO, folder)
    return folder


def test_an_absurd_config_is_refused_against_the_weight_file_before_any_allocation(demo_copy, tmp_path):
    """A PattenNet with adapter_channels 10,000,000 would ask for far more memory than this machine has:
    refused from the meta-device build; a config that builds another network than the weights is refused too."""
    from neonet_core.neocls.stage import build_from_network_config

    bundle = edited(shutil.copytree(demo_copy, tmp_path / "absurd"),
                    lambda i: i["networks"]["cls"]["config"]["cls"].update(model="pattennet", adapter_channels=10_000_000))
    with pytest.raises(BundleError, match=r"asks for [\d,]+ parameters \(at most 2,000,000,000\)") as err:
        load_bundle(bundle).build("cls", build_from_network_config)
    assert str(bundle / "bundle.json") in str(err.value)
    shifted = edited(shutil.copytree(demo_copy, tmp_path / "shifted"),  # the demo's CNN sees image + mask (2 channels)
                     lambda i: i["networks"]["cls"]["config"]["cls"].__setitem__("model", "cnn-image"))
    with pytest.raises(BundleError, match=r"does not fit its weights cls.safetensors: parameter '.*' is shape \[16, 1, .*\] in the "
                                          r"config, shape \[16, 2, .*\] in the file"):
        load_bundle(shifted).build("cls", build_from_network_config)


@pytest.mark.parametrize("network, field, value, shifted_value", [
    ("autoencoder", "channels", [10_000_000, 16, 32], [16, 16, 32]),
    ("ldm", "channels", [10_000_000, 64, 64], [16, 64, 64]),
    ("controlnet", "conditioning_channels", [10_000_000, 32], [8, 32]),
])
def test_an_absurd_neogen_config_is_refused_before_any_allocation(demo_copy, tmp_path, network, field, value, shifted_value):
    """NeoGen's loaders go through the same meta-device check: a 10,000,000-channel level is refused, not built."""
    from neonet_core.neogen.loaders import load_neogen

    bundle = edited(shutil.copytree(demo_copy, tmp_path / "absurd"),
                    lambda i: i["networks"][network]["config"].__setitem__(field, value))
    with pytest.raises(BundleError, match=rf"the config of network '{network}' asks for [\d,]+ parameters "
                                          r"\(at most 2,000,000,000\)") as err:
        load_neogen(bundle)
    assert str(err.value).startswith(str(bundle / "bundle.json") + ": ") and "\n" not in str(err.value)
    shifted = edited(shutil.copytree(demo_copy, tmp_path / "shifted"),
                     lambda i: i["networks"][network]["config"].__setitem__(field, shifted_value))
    with pytest.raises(BundleError, match=rf"the config of network '{network}' does not fit its weights {network}.safetensors"):
        load_neogen(shifted)


# --- item 7: .zip bundles: extracted once, only what bundle.json names, capped ----------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEONET_BUNDLE_CACHE", str(folder))  # configuration, as a user would set it
    return folder


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_zip_is_extracted_once_per_version_and_the_cache_stays_small(tmp_path, cache):
    zipped = zip_bundle(tiny_bundle(tmp_path / "b"), tmp_path / "b.zip")
    first, second = load_bundle(zipped), load_bundle(zipped)
    assert first.path == second.path and len(os.listdir(cache)) == 1
    for n in range(8):  # a new version of the zip each time (new mtime): old extractions are removed
        os.utime(zipped, ns=(n * 10**9, n * 10**9))
        load_bundle(zipped).verify()
    assert len([p for p in os.listdir(cache) if not p.startswith(".")]) <= 4
    (tmp_path / "b" / "seg.safetensors").write_bytes(b"tampered")  # a failed verify leaves no new folder behind
    bad = shutil.make_archive(str(tmp_path / "bad"), "zip", tmp_path / "b")
    for _ in range(3):
        with pytest.raises(BundleError, match="SHA-256 mismatch"):
            load_bundle(bad).verify()
    assert len([p for p in os.listdir(cache) if not p.startswith(".")]) <= 4


def test_a_zip_extracts_only_the_files_bundle_json_names_and_respects_the_cap(tmp_path, cache, monkeypatch):
    bundle = tiny_bundle(tmp_path / "b")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("bundle.json", "seg.safetensors"):
            zf.write(bundle / name, name)
        zf.writestr("extra.bin", b"\0" * (64 << 20))  # 64 MB of zeros, a few kB compressed
        zf.writestr("../escape.txt", b"x")
    assert bomb.stat().st_size < 1 << 20
    loaded = load_bundle(bomb)
    assert sorted(os.listdir(loaded.path)) == ["bundle.json", "seg.safetensors"] and folder_bytes(cache) < 1 << 20
    assert not (tmp_path / "escape.txt").exists()
    monkeypatch.setenv("NEONET_BUNDLE_MAX_BYTES", "100")
    os.utime(bomb, ns=(1, 1))
    with pytest.raises(BundleError, match=r"would extract [\d,]+ bytes, more than the 100 allowed") as err:
        load_bundle(bomb)
    assert str(bomb) in str(err.value)
    missing = tmp_path / "missing.zip"
    with zipfile.ZipFile(missing, "w") as zf:
        zf.write(bundle / "bundle.json", "bundle.json")
    with pytest.raises(BundleError, match="weight file seg.safetensors named by bundle.json is not in the zip"):
        load_bundle(missing)
    assert not [p for p in os.listdir(cache) if p.startswith(".")]  # no unfinished extraction left
