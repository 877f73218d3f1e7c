"""The settings of ``neonet demo`` and of the shipped demo bundle (``Resources/Models/make_demo_bundle.py``).

Each plan: ``cohort`` (the phantom cohort's :func:`~neonet_core.phantom.cohort.generate_cohort`
arguments), ``folds`` and ``models`` for ``neonet cv``, and ``config``, a JSON config as ``--config``
accepts it: the tiny preset with shorter schedules. The final bundle's classifier is the preset's
(the plain CNN, no NeoGen balancing), cross-validated against PattenNet (region pooling) + NeoGen.
"""

from __future__ import annotations


def tiny_with_schedules(epochs: dict[str, int], sampling_steps: int, **sections: dict) -> dict:
    """The tiny preset with ``epochs`` per stage, ``sampling_steps`` for the LDM, and ``sections`` merged in."""
    config = {"preset": "tiny", **{stage: {"train": {"epochs": n}} for stage, n in epochs.items()}}
    config["ldm"]["sampling_steps"] = sampling_steps
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


DEMO = {
    "cohort": {"cases": 40, "positives": 14, "difficulty": 0.3, "size": [96, 96, 32], "spacing": [2.0, 2.0, 3.75]},
    "folds": 3,
    "models": ["cnn:no-neogen", "pattennet-regions:neogen"],
    "config": tiny_with_schedules({"seg": 8, "ae": 6, "ldm": 10, "controlnet": 4, "cls": 60}, sampling_steps=10),
}
# A smaller cohort and 16^3 patches: a smoke test of every step, not a result.
QUICK = {
    "cohort": {"cases": 16, "positives": 6, "difficulty": 0.2, "size": [64, 64, 24], "spacing": [3.0, 3.0, 5.0]},
    "folds": 2,
    "models": ["cnn:no-neogen", "pattennet-regions:neogen"],
    "config": tiny_with_schedules({"seg": 2, "ae": 2, "ldm": 2, "controlnet": 1, "cls": 4}, sampling_steps=4,
                    preprocess={"patch_size": 16}, seg={"roi_size": [32, 32, 32]}),
}
