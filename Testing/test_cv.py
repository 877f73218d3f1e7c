"""Cross-validation folds (stratified, grouped, leakage-free) and a small end-to-end cv run."""

import json
from pathlib import Path

import numpy as np
import pytest

from neonet_core.errors import NeoNetError
from neonet_core.manifest import Case
from neonet_core import splits as F
from neonet_core.workflows.cv import parse_models


def _cohort(n_patients=30, positives=11, seed=0):
    """Cases of patients with 1-3 cases each; a patient's cases share its label."""
    rng = np.random.default_rng(seed)
    cases = []
    for p in range(n_patients):
        label = int(p < positives)
        for s in range(int(rng.integers(1, 4))):
            cases.append(Case(f"p{p}_s{s}", Path(f"p{p}_{s}.nii.gz"), None, None, label, f"p{p}"))
    return cases


def test_folds_are_stratified_grouped_and_deterministic():
    cases = _cohort()
    folds = F.assign_folds(cases, 5, seed=3)
    assert folds == F.assign_folds(cases, 5, seed=3)
    assert folds != F.assign_folds(cases, 5, seed=4)
    assert set(folds.values()) == set(range(5)) and set(folds) == {c.case_id for c in cases}
    # grouped: every case of a patient in the same fold
    by_patient = {}
    for c in cases:
        by_patient.setdefault(c.patient_id, set()).add(folds[c.case_id])
    assert all(len(v) == 1 for v in by_patient.values())
    # stratified: each fold holds 2 or 3 of the 11 positive patients and 3 or 4 of the 19 negative ones
    for k in range(5):
        pos = {c.patient_id for c in cases if folds[c.case_id] == k and c.label == 1}
        neg = {c.patient_id for c in cases if folds[c.case_id] == k and c.label == 0}
        assert len(pos) in (2, 3) and len(neg) in (3, 4)


def test_splits_never_leak():
    cases = _cohort(seed=1)
    folds = F.assign_folds(cases, 5, seed=0)
    seen_val = []
    for k in range(5):
        train, val = F.fold_split(cases, folds, k)
        F.check_no_leakage(train, val)
        assert not {c.patient_id for c in train} & {c.patient_id for c in val}
        inner_train, inner_val = F.hold_out(train, 0.2, seed=k).apply(train)
        F.check_no_leakage(inner_train, inner_val)
        assert {c.label for c in inner_val} == {0, 1}
        assert not {c.case_id for c in inner_train + inner_val} & {c.case_id for c in val}
        seen_val += [c.case_id for c in val]
        # synthetic cases made from inner-training sources pass; from a validation case they do not
        src = next(c for c in inner_train if c.label == 1)
        good = Case("syn0", Path("s.nii.gz"), None, None, 1, src.patient_id, True, src.case_id)
        F.check_no_leakage(inner_train + [good], val, [good])
        bad = Case("syn1", Path("s.nii.gz"), None, None, 1, val[0].patient_id, True, val[0].case_id)
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(inner_train + [bad], val, [bad])
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(inner_train, val + [good])
        with pytest.raises(NeoNetError, match="leakage"):
            F.check_no_leakage(train, val + train[:1])
    assert sorted(seen_val) == sorted(c.case_id for c in cases)  # every case validated exactly once


def test_fold_errors_are_clear():
    with pytest.raises(NeoNetError, match="at least 5 patients of each class"):
        F.assign_folds(_cohort(10, 3), 5)
    unlabelled = [Case("a", Path("a"), None, None, None, "a")]
    with pytest.raises(NeoNetError, match="needs a label"):
        F.assign_folds(unlabelled, 2)


def test_model_specs():
    specs = parse_models(["pattennet", "pattennet:no-neogen", "densenet121:no-neogen", "resnet18"], neogen=True)
    assert [s.name for s in specs] == ["pattennet+neogen", "pattennet", "densenet121", "resnet18+neogen"]
    assert [s.name for s in parse_models(["pattennet"], neogen=False)] == ["pattennet"]
    with pytest.raises(NeoNetError, match="unknown model"):
        parse_models(["vgg"])


def test_ratio_ablation_specs():
    """``:neogen=R`` asks for a share R of the 1:1 synthetic patches; 0 and 1 are the plain names."""
    specs = parse_models(["cnn:neogen=0.5", "cnn:neogen=1", "cnn:neogen=0", "cnn+neogen", "cnn:neogen=0.25"])
    assert [(s.name, s.synthetic) for s in specs] == [("cnn+neogen0.5", 0.5), ("cnn+neogen", 1.0), ("cnn", 0.0), ("cnn+neogen0.25", 0.25)]
    assert specs[0].neogen and not specs[2].neogen
    for bad in ("cnn:neogen=2", "cnn:neogen=-0.1", "cnn:neogen=nan", "cnn:neogen=half", "cnn:gen"):
        with pytest.raises(NeoNetError, match="suffix"):
            parse_models([bad])


# --- end to end ------------------------------------------------------------------------------
MICRO = {
    "preset": "tiny",
    "preprocess": {"patch_size": 16, "roi_mm": 48.0},
    "ae": {"channels": [8, 16, 16], "crops_per_case": 2, "train": {"epochs": 2, "batch_size": 4}},
    "ldm": {"channels": [16, 16, 16], "attention_levels": [False, False, False], "num_head_channels": 8, "sampling_steps": 3,
            "train": {"epochs": 1, "batch_size": 4}},
    "controlnet": {"conditioning_channels": [8, 16], "train": {"epochs": 1, "batch_size": 4}},
    "val_fraction": 0.25,
    "cls": {"train": {"epochs": 12, "batch_size": 4, "lr": 3e-3}},
}


MICRO_CROPS = MICRO["ae"]["crops_per_case"]


def write_learnable_cohort(folder: Path, n=16, positives=8, seed=0) -> Path:
    """NIfTI cases (real files via SimpleITK): a dark tumour in a grey organ; PNI+ cases have a bright
    rod leaving the tumour (outside the mask, as in the phantom), PNI- ones do not."""
    from neonet_core.io import write_volume
    from neonet_core.volume import Volume

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["case_id,image,tumor_mask,label,patient_id"]
    z, y, x = np.mgrid[:20, :24, :24]
    for i in range(n):
        label = int(i < positives)
        c = np.array([10, 12, 12]) + rng.integers(-2, 3, 3)
        r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        tumour = r < 3.5
        image = 300 + 20 * rng.standard_normal(z.shape)
        image[tumour] = 120
        if label:
            axis = int(rng.integers(1, 3))
            rod = (np.abs(z - c[0]) <= 1) & ((np.abs(y - c[1]) <= 1) if axis == 2 else (np.abs(x - c[2]) <= 1))
            rod &= ~tumour & (r < 9)
            image[rod] = 700
        spacing = (2.5, 2.5, 2.5)
        write_volume(Volume(image.astype(np.int16), spacing), folder / f"c{i}.nii.gz")
        write_volume(Volume(tumour.astype(np.uint8), spacing), folder / f"c{i}_t.nii.gz")
        rows.append(f"c{i},c{i}.nii.gz,c{i}_t.nii.gz,{label},p{i}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


@pytest.mark.slow
def test_cv_end_to_end_beats_chance_and_resumes(tmp_path):
    from neonet_core.patches import PatchSet
    from neonet_core.workflows.cv import run_cv
    from neonet_core.neocls.report import collect

    manifest = write_learnable_cohort(tmp_path / "cohort", n=16, positives=6)
    (tmp_path / "micro.json").write_text(json.dumps(MICRO))
    out = tmp_path / "cv"
    report = run_cv(manifest, out, ["pattennet:neogen"], n_folds=2, config=tmp_path / "micro.json", device="cpu")
    metrics = json.loads((out / "metrics.json").read_text())["models"]["pattennet+neogen"]
    assert metrics["n_cases"] == 16 and metrics["folds"] == [0, 1]
    assert metrics["pooled_auc"] > 0.75, metrics
    text = report.read_text()
    assert "pooled out-of-fold AUC" in text and "best single fold (optimistic)" in text
    assert "## Settings" in text and "- Classifiers: 12 epochs" in text
    assert (out / "roc.png").stat().st_size > 1000
    # leakage audit from the files: validation cases never trained on, synthetic from training cases only
    plan = json.loads((out / "cv_plan.json").read_text())
    for k in range(2):
        val = {c for c, f in plan["folds"].items() if f == k}
        (split,) = json.loads((out / f"fold_{k}" / "splits.json").read_text())["holdouts"].values()
        held = set(split["val_patients"])
        assert held and not held & {f"p{c[1:]}" for c in val}  # the inner hold-out comes from training patients
        syn = PatchSet.load(out / f"fold_{k}" / "synthetic.npz")
        assert len(syn), "NeoGen made no synthetic case"
        assert not set(syn.sources) & val and set(syn.labels.tolist()) == {1} and syn.synthetic.all()
        assert not {s for s in syn.sources} & {c for c in plan["folds"] if f"p{c[1:]}" in held}  # nor from inner validation
        result = json.loads((out / f"fold_{k}" / "pattennet+neogen" / "result.json").read_text())
        assert {c["case_id"] for c in result["cases"]} == val
        assert result["train"]["synthetic"] > 0
        # the fold's autoencoder also trained on random crops of its inner-training cases, and of no other case
        ae = json.loads((out / f"fold_{k}" / "neogen" / "bundle.json").read_text())["training"]["ae"]
        n_inner_train = sum(1 for c, f in plan["folds"].items() if f != k and f"p{c[1:]}" not in held)
        assert ae["crops"] == MICRO_CROPS * n_inner_train and ae["train_cases"] == n_inner_train and np.isfinite(ae["val_psnr"])
    # resume: finished folds are skipped (their results untouched)
    stamp = (out / "fold_0" / "pattennet+neogen" / "result.json").stat().st_mtime_ns
    run_cv(manifest, out, ["pattennet:neogen"], n_folds=2, config=tmp_path / "micro.json", device="cpu")
    assert (out / "fold_0" / "pattennet+neogen" / "result.json").stat().st_mtime_ns == stamp
    assert len(collect(out)[1]["pattennet+neogen"]) == 2


@pytest.mark.slow
def test_a_seeded_cv_run_gives_the_same_figures_and_another_seed_other_ones(tmp_path):
    """Same seed, two folders: identical out-of-fold probabilities (NeoGen, synthetic patches,
    classifiers); another seed changes the folds' training (the seed reaches every stage)."""
    from neonet_core.workflows.cv import run_cv

    manifest = write_learnable_cohort(tmp_path / "cohort", n=12, positives=4)
    (tmp_path / "micro.json").write_text(json.dumps({**MICRO, "cls": {"train": {"epochs": 3, "batch_size": 4}}}))

    def probabilities(out, seed):
        run_cv(manifest, out, ["pattennet:neogen", "cnn:no-neogen"], n_folds=2, config=tmp_path / "micro.json", seed=seed, device="cpu")
        results = sorted(out.glob("fold_*/*/result.json"))
        return {(p.parent.name, c["case_id"]): c["probability"] for p in results for c in json.loads(p.read_text())["cases"]}

    first, again = probabilities(tmp_path / "a", 0), probabilities(tmp_path / "b", 0)
    assert len(first) == 2 * 12 and first == again
    assert np.array_equal(np.load(tmp_path / "a" / "fold_0" / "synthetic.npz")["images"],
                          np.load(tmp_path / "b" / "fold_0" / "synthetic.npz")["images"])
    other = probabilities(tmp_path / "c", 1)
    assert other.keys() == first.keys() and other != first


def test_a_resumed_cv_ignores_the_default_classifier_but_not_what_it_trains_with(tmp_path):
    from neonet_core.workflows.cv import prepare

    manifest = write_learnable_cohort(tmp_path / "cohort", n=12, positives=4)
    configs = {name: tmp_path / f"{name}.json" for name in ("first", "other_default", "other_schedule")}
    configs["first"].write_text(json.dumps({"preset": "tiny", "cls": {"model": "pattennet", "neogen": True}}))
    configs["other_default"].write_text(json.dumps({"preset": "tiny", "cls": {"model": "cnn", "neogen": False}}))
    configs["other_schedule"].write_text(json.dumps({"preset": "tiny", "cls": {"train": {"epochs": 7}}}))
    prepare(manifest, tmp_path / "cv", 2, configs["first"])
    prepare(manifest, tmp_path / "cv", 2, configs["other_default"])  # every --model sets its own classifier
    with pytest.raises(NeoNetError, match="another config"):
        prepare(manifest, tmp_path / "cv", 2, configs["other_schedule"])
