"""Rebuild the demo model bundle shipped in Resources/Models/neonet-demo (run from the repository root).

    python Resources/Models/make_demo_bundle.py [--work DIR] [--cv neonet-demo/cv]

It generates the demo phantom cohort (the settings of `neonet demo`), trains every stage with the
tiny preset and the demo schedules (`neonet train all`), writes the model card into bundle.json,
stores the weights in float16 (half the size; they load into the float32 networks) and keeps only
bundle.json and the weights (no checkpoints). The bundle is trained on synthetic
phantoms: it shows how NeoNet works and is NOT for clinical use.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from neonet_core.bundle import add_network, load_bundle, write_bundle_info
from neonet_core.config import NeoNetConfig, get_preset, merge_dicts
from neonet_core.demo_presets import DEMO
from neonet_core.phantom.cohort import generate_cohort
from neonet_core.workflows.training import train_all

TARGET = Path(__file__).resolve().parent / "neonet-demo"
MODEL_CARD = (
    "Demo model trained on {cases} synthetic phantom cases ({positives} PNI+) with the tiny preset "
    "(Resources/Models/make_demo_bundle.py). It shows how NeoNet works. It has never seen a patient: "
    "NOT FOR CLINICAL USE."
)
# NeoSeg gets the tiny preset's full schedule (measured by bench/neoseg_quality.py) instead of the demo's
# 8 epochs, so that "Localize tumour" finds phantom tumours.
SEG = {"train": {"epochs": get_preset("tiny").seg.train.epochs}}


def store_half_precision(bundle_dir: Path, info: dict) -> None:
    """Rewrite every network's float32 weights as float16 and publish bundle.json.

    The new weight hashes replace the old ones wherever a config refers to another network by hash
    (the LDM names its autoencoder, the ControlNet its LDM).
    """
    bundle = load_bundle(bundle_dir)
    new_hash = {}
    for name, entry in bundle.networks.items():
        state = {k: v.half() if v.dtype == torch.float32 else v for k, v in bundle.state_dict(name).items()}
        add_network(bundle_dir, info, name, state, entry["config"])
        new_hash[entry["sha256"]] = info["networks"][name]["sha256"]
    for entry in info["networks"].values():
        entry["config"] = {k: new_hash.get(v, v) if isinstance(v, str) else v for k, v in entry["config"].items()}
    write_bundle_info(bundle_dir, info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--cv", type=Path, default=None,
                        help="the cv folder of `neonet demo` (same cohort): the decision threshold from its pooled "
                             "out-of-fold predictions instead of the 8 held-out training patients")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="neonet-demo-bundle-"))
    cohort = DEMO["cohort"]
    manifest = generate_cohort(work / "cohort", cohort["cases"], cohort["positives"], seed=0,
                               difficulty=cohort["difficulty"], size=tuple(cohort["size"]), spacing=tuple(cohort["spacing"]))
    config = NeoNetConfig.from_dict(merge_dicts(get_preset("tiny").to_dict(), {**DEMO["config"], "seg": SEG}))
    bundle_dir = train_all(manifest, config, work / "neonet-demo", "cpu", resume=(work / "neonet-demo").exists(), cv_dir=args.cv)

    info = load_bundle(bundle_dir).info
    info["name"] = "neonet-demo"
    info["model_card"] = MODEL_CARD.format(cases=cohort["cases"], positives=cohort["positives"])
    store_half_precision(bundle_dir, info)
    staged = TARGET.with_name(".neonet-demo.new")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    for name in ["bundle.json"] + [entry["file"] for entry in info["networks"].values()]:
        shutil.copy2(bundle_dir / name, staged / name)
    load_bundle(staged).verify()  # every hash, before replacing the shipped bundle
    shutil.rmtree(TARGET, ignore_errors=True)
    staged.rename(TARGET)
    print(f"demo bundle written to {TARGET}")


if __name__ == "__main__":
    main()
