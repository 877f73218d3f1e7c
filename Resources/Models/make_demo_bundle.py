"""Rebuild the demo model bundle shipped in Resources/Models/neonet-demo (run from the repository root).

    python Resources/Models/make_demo_bundle.py [--work DIR]

It generates the demo phantom cohort (the settings of `neonet demo`), trains every stage with the
tiny preset and the demo schedules (`neonet train all`), writes the model card into bundle.json and
keeps only bundle.json and the weights (no checkpoints). The bundle is trained on synthetic
phantoms: it shows how NeoNet works and is NOT for clinical use.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from neonet_core.bundle import load_bundle, write_bundle_info
from neonet_core.cli.demo import DEMO
from neonet_core.config import NeoNetConfig, get_preset, merge_dicts
from neonet_core.phantom.cohort import generate_cohort
from neonet_core.pipeline import train_all

TARGET = Path(__file__).resolve().parent / "neonet-demo"
MODEL_CARD = (
    "Demo model trained on {cases} synthetic phantom cases ({positives} PNI+) with the tiny preset "
    "(Resources/Models/make_demo_bundle.py). It shows how NeoNet works. It has never seen a patient: "
    "NOT FOR CLINICAL USE."
)
# NeoSeg gets a longer schedule than in `neonet demo` so that "Localize tumour" finds phantom tumours.
SEG = {"roi_size": [32, 32, 32], "pos_fraction": 0.8, "train": {"epochs": 40, "batch_size": 4, "lr": 0.005}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="neonet-demo-bundle-"))
    cohort = DEMO["cohort"]
    manifest = generate_cohort(work / "cohort", cohort["cases"], cohort["positives"], seed=0,
                               difficulty=cohort["difficulty"], size=tuple(cohort["size"]), spacing=tuple(cohort["spacing"]))
    config = NeoNetConfig.from_dict(merge_dicts(get_preset("tiny").to_dict(), {**DEMO["config"], "seg": SEG}))
    bundle_dir = train_all(manifest, config, work / "neonet-demo", resume=(work / "neonet-demo").exists(), device="cpu")

    info = load_bundle(bundle_dir).info
    info["name"] = "neonet-demo"
    info["model_card"] = MODEL_CARD.format(cases=cohort["cases"], positives=cohort["positives"])
    write_bundle_info(bundle_dir, info)
    staged = TARGET.with_name(".neonet-demo.new")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    for name in ["bundle.json"] + [entry["file"] for entry in info["networks"].values()]:
        shutil.copy2(bundle_dir / name, staged / name)
    load_bundle(staged)  # verify before replacing the shipped bundle
    shutil.rmtree(TARGET, ignore_errors=True)
    staged.rename(TARGET)
    print(f"demo bundle written to {TARGET}")


if __name__ == "__main__":
    main()
