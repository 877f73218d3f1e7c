"""Leakage-safe k-fold cross-validation of NeoCls models (with or without NeoGen balancing).

For each fold k (stratified by label, grouped by patient, fixed seed; :mod:`neonet_core.splits`):

1. The fold's training cases are split once into inner-training and inner-validation patients
   (``fold_k/splits.json``). Every stage that learns validates on those same patients: the NeoGen
   autoencoder, LDM and ControlNet (``fold_k/neogen``, a bundle) train on the inner-training
   patches; the classifier trains on them (+ synthetic patches for ``+neogen`` variants) and
   publishes its final (EMA) weights; the inner-validation patients give its learning curve and
   the Youden threshold (best-epoch selection only when the config asks for it). The fold's validation
   cases (real only, never seen before) are predicted once: ``fold_k/<model>/result.json``.
2. NeoGen balances the inner-training patches 1:1 with synthetic patches conditioned on
   inner-training minority cases only (``fold_k/synthetic.npz``); their detectability and class
   fidelity go to ``fold_k/neogen_quality.json`` with a gallery (:mod:`neonet_core.workflows.quality`).
3. Every stage of fold k trains with seed ``seed + k`` (the run's ``--seed`` reaches all of them).

A model that needs the autoencoder (PattenNet) trains the fold's autoencoder even without NeoGen.
Resuming: a model whose ``result.json`` exists is skipped; an interrupted engine run resumes from
its checkpoint; NeoGen stages already in the fold bundle are reused.

Out folder: ``cv_plan.json`` (folds, seed, config), ``patches.npz`` (real TLCR patches, cropped
once), ``fold_k/...``, and after :func:`neonet_core.neocls.report.write_report`:
``oof_predictions.csv``, ``metrics.json``, ``roc.png``, ``report.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neonet_core.config import NeoNetConfig, resolve_config
from neonet_core.device import resolve_device
from neonet_core.errors import NeoNetError
from neonet_core.fileio import write_text_atomic
from neonet_core.neocls.models import CLASSIFIERS
from neonet_core.patches import PatchSet, cohort_patches
from neonet_core.progress import emit
from neonet_core.splits import assign_folds, check_no_leakage, fold_split, hold_out
from neonet_core.workflows.quality import neogen_quality
from neonet_core.workflows.training import (autoencoder_crops, balance_synthetic, bundle_has, check_patch_leakage, choose_threshold,
                                           fit_classifier, read_cohort, train_neogen)

PLAN = "cv_plan.json"
RESULT = "result.json"


@dataclass(frozen=True)
class ModelSpec:
    """A model to cross-validate: the classifier and how much of the 1:1 NeoGen balancing its
    training folds get (``synthetic``: 0 = none, 1 = 1:1, 0.5 = half of those synthetic patches)."""

    model: str
    synthetic: float = 0.0

    @property
    def neogen(self) -> bool:
        return self.synthetic > 0

    @property
    def name(self) -> str:
        if not self.neogen:
            return self.model
        return f"{self.model}+neogen" if self.synthetic == 1 else f"{self.model}+neogen{self.synthetic:g}"


def parse_models(names, neogen: bool = True) -> list[ModelSpec]:
    """``MODEL`` (NeoGen as ``neogen`` says), ``MODEL:neogen``, ``MODEL:no-neogen``, ``MODEL:neogen=R``
    (a share R in (0, 1] of the 1:1 synthetic patches: the ratio ablation), or a result name
    ``MODEL+neogen``. Duplicates are dropped."""
    specs: list[ModelSpec] = []
    for raw in names or ["pattennet"]:
        name, _, flag = raw.partition(":")
        share = 1.0 if neogen else 0.0
        if name.endswith("+neogen"):
            name, share = name[: -len("+neogen")], 1.0
        if flag:
            share = _synthetic_share(raw, flag)
        if name not in CLASSIFIERS:
            raise NeoNetError(f"--model {raw}: unknown model {name!r}; choose one of {', '.join(CLASSIFIERS)}")
        spec = ModelSpec(name, share)
        if spec not in specs:
            specs.append(spec)
    return specs


def _synthetic_share(raw: str, flag: str) -> float:
    if flag in ("neogen", "no-neogen"):
        return float(flag == "neogen")
    key, _, value = flag.partition("=")
    try:
        share = float(value) if key == "neogen" else float("nan")
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 1.0:  # NaN fails too
        raise NeoNetError(f"--model {raw}: the suffix must be ':neogen', ':no-neogen' or ':neogen=R' with R in [0, 1]")
    return share


def prepare(manifest, out_dir, n_folds: int = 5, config="tiny", seed: int = 0) -> tuple[NeoNetConfig, list, dict[str, int]]:
    """Read the cohort, assign folds and write (or check) ``cv_plan.json``; returns (config, cases, folds)."""
    cfg = resolve_config(config).with_overrides(seed=seed)
    out_dir = Path(out_dir)
    cases = read_cohort(manifest, require_labels=True)
    folds = assign_folds(cases, n_folds, seed)
    plan = {"manifest": str(Path(manifest).resolve()), "n_folds": n_folds, "seed": seed, "config": cfg.to_dict(), "folds": folds}
    path = out_dir / PLAN
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        old["config"] = _trained_with(old.get("config", {}))
        for key in ("n_folds", "seed", "folds", "config"):
            new = _trained_with(plan["config"]) if key == "config" else plan[key]
            if json.dumps(old.get(key), sort_keys=True) != json.dumps(new, sort_keys=True):
                raise NeoNetError(f"{out_dir}: holds a cv run with another {key.replace('n_', 'number of ')}; use a new --out folder")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(plan, indent=2, sort_keys=True) + "\n")
    return cfg, cases, folds


def _trained_with(config: dict) -> dict:
    """The parts of a config that cv trains with: not ``cls.model`` and ``cls.neogen`` (each ``--model``
    spec sets its own classifier and synthetic share), so a changed default does not block a resume."""
    used = {k: config.get(k) for k in ("val_fraction", "preprocess", "ae", "ldm", "controlnet", "cls")}
    used["cls"] = {k: v for k, v in (used["cls"] or {}).items() if k not in ("model", "neogen")}
    return used


def run_fold(k: int, cfg: NeoNetConfig, cases, folds, patches: PatchSet, specs, out_dir, device) -> dict[str, dict]:
    """Run fold ``k`` for every model in ``specs``; returns {model name: result dict}. The fold's
    autoencoder also trains on random crops of its training cases (cached in ``out_dir`` for all folds)."""
    from neonet_core.neocls.data import model_input
    from neonet_core.neocls.metrics import roc_auc
    from neonet_core.neocls.models import get_classifier
    from neonet_core.neocls.stage import predict_probabilities

    fold_dir = Path(out_dir) / f"fold_{k}"
    todo = [s for s in specs if not (fold_dir / s.name / RESULT).exists()]
    results = {s.name: json.loads((fold_dir / s.name / RESULT).read_text()) for s in specs if s not in todo}
    if not todo:
        return results
    base_cfg, cfg = cfg, cfg.with_overrides(seed=cfg.seed + k)
    train_cases, val_cases = fold_split(cases, folds, k)
    inner_train, inner_val = hold_out(train_cases, cfg.val_fraction, cfg.seed, fold_dir).apply(train_cases)
    check_no_leakage(train_cases, val_cases)
    check_no_leakage(inner_train, inner_val)
    train, inner_val_patches, val_patches = patches.of_cases(inner_train), patches.of_cases(inner_val), patches.of_cases(val_cases)
    bundle_dir = fold_dir / "neogen"
    need_ae = any(get_classifier(s.model).needs_autoencoder for s in todo)
    need_gen = any(s.neogen for s in todo)
    timings, synthetic = {}, PatchSet.empty(patches.images.shape[1:])
    if need_ae or need_gen:
        t0 = time.perf_counter()
        crops = None if bundle_has(bundle_dir, "autoencoder") else autoencoder_crops(cases, inner_train, base_cfg, out_dir)
        train_neogen(train, inner_val_patches, cfg, bundle_dir, device, generative=need_gen, crops=crops)
        timings["neogen_train_s"] = time.perf_counter() - t0
    if need_gen:
        t0 = time.perf_counter()
        synthetic = balance_synthetic(bundle_dir, train, cfg.seed, device, fold_dir / "synthetic.npz")
        check_patch_leakage(train + synthetic, val_patches)
        timings["neogen_generate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        neogen_quality(bundle_dir, train, synthetic, cfg.seed, device, fold_dir)
        timings["neogen_quality_s"] = time.perf_counter() - t0
    for spec in todo:
        model_dir = fold_dir / spec.name
        scfg = NeoNetConfig.from_dict(cfg.to_dict())
        scfg.cls.model = spec.model
        channels = get_classifier(spec.model).in_channels
        fit_set = train + synthetic.take(np.arange(round(spec.synthetic * len(synthetic))))
        t0 = time.perf_counter()
        model, fit = fit_classifier(fit_set, inner_val_patches, scfg, bundle_dir, model_dir / "run", device,
                                    resume=(model_dir / "run" / "checkpoint.pt").exists())
        t_train = time.perf_counter() - t0
        inner_p, _ = predict_probabilities(model, model_input(inner_val_patches.images, inner_val_patches.tumour, channels), device, tta=scfg.cls.tta)
        threshold = choose_threshold(inner_val_patches.labels, inner_p)
        p, spread = predict_probabilities(model, model_input(val_patches.images, val_patches.tumour, channels), device, tta=scfg.cls.tta)
        result = {
            "fold": k,
            "model": spec.name,
            "classifier": spec.model,
            "neogen": spec.neogen,
            "synthetic_share": spec.synthetic,
            "seed": cfg.seed,
            "threshold": threshold,
            "threshold_source": "Youden on this fold's inner validation (training patients only)",
            "auc": roc_auc(val_patches.labels, p),
            "inner_val_auc": roc_auc(inner_val_patches.labels, inner_p),
            "best_step": fit.best_step,
            "steps": fit.steps,
            "train": {"real": int((~fit_set.synthetic).sum()), "synthetic": int(fit_set.synthetic.sum()),
                      "positive": int((fit_set.labels == 1).sum()), "negative": int((fit_set.labels == 0).sum()),
                      "inner_val": len(inner_val_patches)},
            "timings_s": {**timings, "classifier_train_s": t_train},
            "cases": [
                {"case_id": c, "patient_id": pid, "label": int(y), "probability": float(pi), "uncertainty": float(si)}
                for c, pid, y, pi, si in zip(val_patches.case_ids, val_patches.patient_ids, val_patches.labels, p, spread)
            ],
        }
        write_text_atomic(model_dir / RESULT, json.dumps(result, indent=2) + "\n")
        emit("fold_done", fold=k, model=spec.name, auc=result["auc"])
        results[spec.name] = result
    return results


def run_cv(manifest, out_dir, models=("pattennet",), n_folds: int = 5, config="tiny", neogen: bool = True,
           fold: int | None = None, seed: int = 0, device="auto", report: bool = True) -> Path:
    """Cross-validate ``models`` on ``manifest`` into ``out_dir``; returns the report path (or the
    fold folder when ``fold`` is given). Resumes an interrupted run in the same folder."""
    specs = parse_models(models, neogen)
    cfg, cases, folds = prepare(manifest, out_dir, n_folds, config, seed)
    if fold is not None and not 0 <= fold < n_folds:
        raise NeoNetError(f"--fold {fold}: must be between 0 and {n_folds - 1}")
    patches = cohort_patches(cases, cfg, out_dir)
    device = resolve_device(device)
    for k in [fold] if fold is not None else range(n_folds):
        run_fold(k, cfg, cases, folds, patches, specs, out_dir, device)
    if fold is not None and not report:
        return Path(out_dir) / f"fold_{fold}"
    from neonet_core.neocls.report import write_report

    return write_report(out_dir)


__all__ = ["ModelSpec", "parse_models", "prepare", "run_fold", "run_cv"]
