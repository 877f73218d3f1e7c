"""neonet predict on real MRI data (Testing/Data) with a real bundle written to disk."""

import argparse
import csv
import json

import numpy as np
import pytest
import torch

from neonet_core.bundle import add_network, new_bundle_info, write_bundle_info
from neonet_core.config import NeoNetConfig
from neonet_core.io import read_mask_on_image, read_volume
from neonet_core.neocls.models import build_classifier
from neonet_core.neocls.stage import network_config
from neonet_core.predict import Prediction, load_predictor, predict_case

DATA = __import__("pathlib").Path(__file__).parent / "Data"
IMAGE, MASK = DATA / "brain_mr_crop.nrrd", DATA / "brain_mr_tumor_crop.nrrd"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle holding an (untrained, seeded) PattenNet with open attention gates; threshold 0.5."""
    folder = tmp_path_factory.mktemp("bundle")
    cfg = NeoNetConfig()
    cfg.cls.model = "pattennet"
    torch.manual_seed(0)
    net = build_classifier(cfg.cls, cfg.ae)
    with torch.no_grad():
        for dab in net.dabs:
            dab.gamma_position.fill_(0.5)
            dab.gamma_channel.fill_(0.1)
    info = new_bundle_info(cfg.to_dict(), threshold=0.5, class_names=["PNI-", "PNI+"], name="test-bundle")
    add_network(folder, info, "cls", net.state_dict(), network_config(cfg))
    write_bundle_info(folder, info)
    return folder


def _cli(argv):
    from neonet_core.cli import predict as module

    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(["predict", *map(str, argv)])
    return args.func(args)


def test_predict_case_on_real_mri(bundle):
    image = read_volume(IMAGE)
    mask = read_mask_on_image(MASK, image)
    p = predict_case(image, mask, bundle, device="cpu", tta=True)
    assert isinstance(p, Prediction)
    assert 0.0 <= p.probability <= 1.0 and p.label == int(p.probability >= 0.5)
    assert p.tumour_source == "user" and p.tumour is mask
    assert p.uncertainty >= 0.0 and p.bundle_name == "test-bundle" and p.class_names == ["PNI-", "PNI+"]
    # the attention map lives on the input grid, in [0, 1], non-zero only inside the ROI box
    att = p.attention
    assert att.array.shape == image.array.shape
    assert np.allclose(att.spacing, image.spacing) and np.allclose(att.origin, image.origin)
    assert np.allclose(att.direction, image.direction)
    assert att.array.min() >= 0.0 and att.array.max() <= 1.0 + 1e-5 and att.array.max() > 0.0
    k, j, i = np.nonzero(att.array > 0)
    points = image.index_to_physical(np.stack([i, j, k], 1).astype(float))
    local = (points - np.asarray(p.roi.center)) @ p.roi.axes
    assert np.all(np.abs(local) <= np.asarray(p.roi.size_mm) / 2 + max(image.spacing))
    assert set(p.timings) >= {"load", "localise", "crop", "classify", "attention", "total"}
    # TTA off: same model, no spread; the predictor is cached
    q = predict_case(image, mask, bundle, device="cpu", tta=False)
    assert q.uncertainty == 0.0
    assert load_predictor(bundle, "cpu") is load_predictor(bundle, "cpu")


def test_cli_predict_writes_outputs_and_refuses_overwrite(bundle, tmp_path):
    out = tmp_path / "out"
    assert _cli(["--bundle", bundle, "--image", IMAGE, "--mask", MASK, "--out", out, "--device", "cpu"]) == 0
    result = json.loads((out / "result.json").read_text())
    for key in ("probability", "label", "threshold", "uncertainty", "roi", "tumour_source", "bundle_version", "library_version", "timings_s"):
        assert key in result
    assert result["tumour_source"] == "user" and result["roi"]["coordinate_system"] == "LPS"
    att = read_volume(out / "attention.nii.gz")
    image = read_volume(IMAGE)
    assert att.array.shape == image.array.shape and np.allclose(att.origin, image.origin, atol=1e-4)
    assert (out / "roi.mrk.json").exists() and not (out / "tumour.nii.gz").exists()
    from neonet_core.errors import InputError

    with pytest.raises(InputError, match="already exists"):
        _cli(["--bundle", bundle, "--image", IMAGE, "--mask", MASK, "--out", out, "--device", "cpu"])


def test_cli_predict_manifest_keeps_going_past_a_bad_case(bundle, tmp_path):
    import shutil

    shutil.copy(IMAGE, tmp_path / "img.nrrd")
    shutil.copy(MASK, tmp_path / "mask.nrrd")
    (tmp_path / "empty.nrrd").write_bytes(b"not an image")
    (tmp_path / "m.csv").write_text("case_id,image,tumor_mask\ngood,img.nrrd,mask.nrrd\nbad,empty.nrrd,mask.nrrd\n")
    out = tmp_path / "out"
    assert _cli(["--bundle", bundle, "--manifest", tmp_path / "m.csv", "--out", out, "--device", "cpu", "--no-tta"]) == 1
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[1]["error"] and float(rows[0]["probability"]) >= 0
    assert (out / "good" / "attention.nii.gz").exists()


def test_predictor_hashes_only_the_networks_it_loads(bundle, tmp_path):
    """A flipped byte in a network predict never loads (here an LDM) goes unnoticed; one in the classifier is caught."""
    import shutil

    from neonet_core.bundle import load_bundle
    from neonet_core.errors import BundleError
    from neonet_core.predict import Predictor

    def flip(folder, name):
        weights = folder / f"{name}.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))

    copy = shutil.copytree(bundle, tmp_path / "b")
    info = load_bundle(copy).info
    add_network(copy, info, "ldm", torch.nn.Conv3d(1, 1, 1).state_dict(), {"kind": "conv"})
    write_bundle_info(copy, info)
    flip(copy, "ldm")
    assert Predictor(copy, "cpu").threshold == 0.5
    flip(copy, "cls")
    with pytest.raises(BundleError, match="SHA-256 mismatch for network 'cls'"):
        Predictor(copy, "cpu")


def test_no_mask_and_no_neoseg_is_a_clear_error(bundle):
    from neonet_core.errors import BundleError

    with pytest.raises(BundleError, match="no NeoSeg network"):
        predict_case(read_volume(IMAGE), None, bundle, device="cpu")


def test_shipped_demo_bundle_loads_and_predicts_the_sample_case():
    """Resources/Models/neonet-demo must follow the code's network definitions (rebuild it with
    Resources/Models/make_demo_bundle.py when they change) and localise + classify the sample case."""
    from pathlib import Path

    from neonet_core.bundle import load_bundle

    root = Path(__file__).resolve().parents[1]
    bundle = root / "Resources" / "Models" / "neonet-demo"
    sample = root / "NeoNetSlicer" / "Resources" / "SampleData"
    assert set(load_bundle(bundle).networks) == {"seg", "autoencoder", "ldm", "controlnet", "cls"}
    image = read_volume(sample / "NeoNetPhantom.nrrd")
    with_mask = predict_case(image, read_mask_on_image(sample / "NeoNetPhantom_tumour.seg.nrrd", image), bundle, device="cpu")
    found = predict_case(image, None, bundle, device="cpu")
    assert with_mask.tumour_source == "user" and found.tumour_source == "neoseg"
    assert 0.0 <= with_mask.probability <= 1.0 and 0.0 <= found.probability <= 1.0
    # NeoSeg's ROI lands on the user's tumour
    assert np.linalg.norm(np.subtract(found.roi.center, with_mask.roi.center)) < 10.0


def test_shipped_demo_bundle_names_no_build_machine_paths():
    """The demo bundle's card (shown by `neonet bundle info` and the Slicer panel) says where its cohort,
    cv and threshold come from, not the folders of the machine that built it."""
    import json
    from pathlib import Path

    info = json.loads((Path(__file__).resolve().parents[1] / "Resources" / "Models" / "neonet-demo" / "bundle.json").read_text())
    recorded = [info["cohort"]["manifest"], info["cv"]["folder"], info["threshold_source"]]
    assert not [text for text in recorded if "/tmp" in text or Path(text.split()[-1]).is_absolute()], recorded
    assert "neonet demo" in info["threshold_source"]
