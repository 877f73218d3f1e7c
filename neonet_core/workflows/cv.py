"""Leakage-safe k-fold cross-validation of NeoCls models (with or without NeoGen balancing).

For each fold k (stratified by label, grouped by patient, fixed seed; :mod:`folds`):

1. The fold's training cases (real only) are written to ``fold_k/train_manifest.csv``. Everything
   that learns sees only them: the NeoGen autoencoder, LDM and ControlNet (``fold_k/neogen``, a
   bundle), the classifier, its best-model selection and its decision threshold. Preprocessing is
   per-patch (TLCR crop + the patch's own robust percentiles), so there are no pooled statistics.
2. The training cases are split by patient into inner-training and inner-validation (stratified,
   ``ClsConfig.val_fraction``). NeoGen balances the inner-training cases 1:1 with synthetic patches
   conditioned on inner-training minority cases only (``fold_k/synthetic``).
3. Each model trains on inner-training (+ synthetic for ``+neogen`` variants); inner-validation
   picks the best epoch and the Youden threshold. The fold's validation cases (real only, never seen
   before) are predicted once: ``fold_k/<model>/result.json``.

PattenNet always needs the fold's autoencoder (its encoder); "without NeoGen" means no synthetic
patches. Resuming: a model whose ``result.json`` exists is skipped; an interrupted engine run
resumes from its checkpoint; NeoGen stages already in the fold bundle are reused, an interrupted
one resumes from its checkpoint; a partial synthetic folder is regenerated (deterministic).

Out folder: ``cv_plan.json`` (folds, seed, config), ``patches.npz`` (real TLCR patches),
``fold_k/...``, and after :func:`neonet_core.neocls.report.write_report`: ``oof_predictions.csv``,
``metrics.json``, ``roc.png``, ``report.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neonet_core.config import NeoNetConfig, load_config
from neonet_core.errors import NeoNetError
from neonet_core.fileio import write_text_atomic
from neonet_core.neocls import folds as F
from neonet_core.neocls.baselines import MODELS
from neonet_core.neocls.data import PatchSet, real_patches, synthetic_patches
from neonet_core.progress import emit

PLAN = "cv_plan.json"
RESULT = "result.json"


@dataclass(frozen=True)
class ModelSpec:
    """A model to cross-validate: the classifier and whether NeoGen balances its training folds."""

    model: str
    neogen: bool

    @property
    def name(self) -> str:
        return f"{self.model}+neogen" if self.neogen else self.model


def parse_models(names, neogen: bool = True) -> list[ModelSpec]:
    """``MODEL`` (NeoGen as ``neogen`` says), ``MODEL:neogen`` or ``MODEL:no-neogen``, or a result
    name ``MODEL+neogen``. Duplicates are dropped."""
    specs: list[ModelSpec] = []
    for raw in names or ["pattennet"]:
        name, _, flag = raw.partition(":")
        use = neogen
        if name.endswith("+neogen"):
            name, use = name[: -len("+neogen")], True
        if flag:
            if flag not in ("neogen", "no-neogen"):
                raise NeoNetError(f"--model {raw}: the suffix must be ':neogen' or ':no-neogen'")
            use = flag == "neogen"
        if name not in MODELS:
            raise NeoNetError(f"--model {raw}: unknown model {name!r}; choose one of {', '.join(MODELS)}")
        spec = ModelSpec(name, use)
        if spec not in specs:
            specs.append(spec)
    return specs


def _resolve(config) -> NeoNetConfig:
    return config if isinstance(config, NeoNetConfig) else load_config(str(config))


def _read_real(manifest):
    from neonet_core.manifest import read_manifest

    cases = read_manifest(manifest, require_labels=True, require_tumor_masks=True)
    real = [c for c in cases if not c.synthetic]
    if len(real) < len(cases):
        emit("warning", message=f"{manifest}: {len(cases) - len(real)} synthetic rows ignored; cv generates its own per fold")
    return real


def prepare(manifest, out_dir, n_folds: int = 5, config="tiny", seed: int = 0) -> tuple[NeoNetConfig, list, dict[str, int]]:
    """Read the cohort, assign folds and write (or check) ``cv_plan.json``; returns (config, cases, folds)."""
    cfg = _resolve(config)
    out_dir = Path(out_dir)
    cases = _read_real(manifest)
    folds = F.assign_folds(cases, n_folds, seed)
    plan = {"manifest": str(Path(manifest).resolve()), "n_folds": n_folds, "seed": seed, "config": cfg.to_dict(), "folds": folds}
    path = out_dir / PLAN
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        used = ("preprocess", "ae", "ldm", "controlnet", "cls")  # the sections cv trains with
        old["config"] = {k: old.get("config", {}).get(k) for k in used}
        for key in ("n_folds", "seed", "folds", "config"):
            new = {k: plan["config"][k] for k in used} if key == "config" else plan[key]
            if json.dumps(old.get(key), sort_keys=True) != json.dumps(new, sort_keys=True):
                raise NeoNetError(f"{out_dir}: holds a cv run with another {key.replace('n_', 'number of ')}; use a new --out folder")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(plan, indent=2, sort_keys=True) + "\n")
    return cfg, cases, folds


def cohort_patches(cases, cfg: NeoNetConfig, out_dir) -> PatchSet:
    """The real TLCR patches of every case, cached in ``out_dir/patches.npz`` (keyed by preprocessing)."""
    path = Path(out_dir) / "patches.npz"
    key = hashlib.sha256(json.dumps([dataclasses.asdict(cfg.preprocess), [(c.case_id, str(c.image), str(c.tumor_mask)) for c in cases]],
                                    sort_keys=True).encode()).hexdigest()[:16]
    key_file = Path(out_dir) / "patches.key"
    if path.exists() and key_file.exists() and key_file.read_text().strip() == key:
        return PatchSet.load(path)
    patches = real_patches(cases, cfg)
    patches.save(path)
    write_text_atomic(key_file, key + "\n")
    return patches


def _write_fold_manifest(cases, path: Path) -> Path:
    from neonet_core.manifest import read_manifest, write_manifest

    if path.exists():
        if [c.case_id for c in read_manifest(path)] == [c.case_id for c in cases]:
            return path
        raise NeoNetError(f"{path}: lists other cases than this fold's training set; use a new --out folder")
    return write_manifest(cases, path)


def _stage_done(bundle_dir: Path, network: str) -> bool:
    from neonet_core.bundle import load_bundle

    return (bundle_dir / "bundle.json").exists() and load_bundle(bundle_dir).has(network)


def train_neogen(manifest: Path, bundle_dir: Path, cfg: NeoNetConfig, generative: bool, device=None) -> None:
    """Train (or finish) the fold's NeoGen bundle: the autoencoder, and the LDM + ControlNet if ``generative``."""
    from neonet_core.neogen import training as T

    stages = [("autoencoder", "ae", T.train_autoencoder)]
    if generative:
        stages += [("ldm", "ldm", T.train_ldm), ("controlnet", "controlnet", T.train_controlnet)]
    for network, run, train in stages:
        if _stage_done(bundle_dir, network):
            continue
        resume = (T.run_dir(bundle_dir, run) / "checkpoint.pt").exists()
        train(manifest, cfg, bundle_dir, resume=resume, device=device)


def fold_synthetic(bundle_dir: Path, sources, out: Path, seed: int, device="cpu") -> list:
    """Synthetic cases balancing ``sources`` 1:1 (from ``sources`` only), in ``out`` (reused when complete)."""
    from neonet_core.distributed import barrier, is_main_process
    from neonet_core.manifest import read_manifest, write_manifest
    from neonet_core.neogen.generate import balance_cases

    manifest = out / "manifest.csv"

    def read_cases() -> list:  # an empty manifest (nothing to balance) holds only its header
        return read_manifest(manifest) if len(manifest.read_text(encoding="utf-8").splitlines()) > 1 else []

    if manifest.exists():
        return read_cases()
    if is_main_process():  # under torchrun rank 0 generates, the others wait and read
        if out.exists():
            shutil.rmtree(out)  # a partial generation of ours: regenerate (deterministic)
        tmp = out.with_name(out.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        cases = balance_cases(bundle_dir, sources, tmp, seed=seed, device=device)
        if cases:
            write_manifest(cases, tmp / "manifest.csv")
        else:
            tmp.mkdir(parents=True, exist_ok=True)
            (tmp / "manifest.csv").write_text("case_id,image\n", encoding="utf-8")
        tmp.rename(out)
    barrier()
    return read_cases()


def _load_autoencoder(bundle_dir: Path):
    from neonet_core.bundle import load_bundle
    from neonet_core.neogen.training import _bundle_autoencoder

    return _bundle_autoencoder(load_bundle(bundle_dir))[0]


def _spec_config(cfg: NeoNetConfig, spec: ModelSpec, device=None, epochs=None) -> NeoNetConfig:
    cfg = NeoNetConfig.from_dict(cfg.to_dict())
    cfg.cls.model = spec.model
    if device is not None:
        cfg.cls.train.device = device
    if epochs is not None:
        cfg.cls.train.epochs = epochs
    return cfg


def choose_threshold(labels, probabilities) -> float:
    """Youden threshold on held-out predictions, 0.5 when they hold one class only."""
    from neonet_core.neocls.metrics import youden_threshold

    labels = np.asarray(labels)
    if len(labels) == 0 or labels.min() == labels.max():
        return 0.5
    return youden_threshold(labels, probabilities).threshold


def run_fold(k: int, cfg: NeoNetConfig, cases, folds, patches: PatchSet, specs, out_dir, seed: int = 0, device=None) -> dict[str, dict]:
    """Run fold ``k`` for every model in ``specs``; returns {model name: result dict}."""
    from neonet_core.neocls.stage import predict_probabilities, train_classifier

    out_dir = Path(out_dir)
    fold_dir = out_dir / f"fold_{k}"
    train_cases, val_cases = F.split(cases, folds, k)
    inner_train, inner_val = F.inner_split(train_cases, cfg.cls.val_fraction, seed + k)
    F.check_no_leakage(train_cases, val_cases)
    F.check_no_leakage(inner_train, inner_val)
    todo = [s for s in specs if not (fold_dir / s.name / RESULT).exists()]
    results = {s.name: json.loads((fold_dir / s.name / RESULT).read_text()) for s in specs if s not in todo}
    if not todo:
        return results
    fold_dir.mkdir(parents=True, exist_ok=True)
    bundle_dir = fold_dir / "neogen"
    gen_cfg = NeoNetConfig.from_dict(cfg.to_dict())
    for section in (gen_cfg.ae, gen_cfg.ldm, gen_cfg.controlnet):
        section.train.seed = seed + k
    need_ae = any(s.model == "pattennet" for s in todo)
    need_gen = any(s.neogen for s in todo)
    timings = {}
    synthetic = []
    if need_ae or need_gen:
        t0 = time.perf_counter()
        manifest = _write_fold_manifest(train_cases, fold_dir / "train_manifest.csv")
        train_neogen(manifest, bundle_dir, gen_cfg, need_gen, device)
        timings["neogen_train_s"] = time.perf_counter() - t0
    if need_gen:
        t0 = time.perf_counter()
        synthetic = fold_synthetic(bundle_dir, inner_train, fold_dir / "synthetic", seed + k, device or "auto")
        F.check_no_leakage(inner_train + synthetic, inner_val, synthetic)
        F.check_no_leakage(inner_train + synthetic, val_cases, synthetic)
        timings["neogen_generate_s"] = time.perf_counter() - t0
    ae = _load_autoencoder(bundle_dir) if need_ae else None
    syn_patches = synthetic_patches(synthetic)
    val_patches = patches.select([c.case_id for c in val_cases])
    inner_val_patches = patches.select([c.case_id for c in inner_val])
    for spec in todo:
        model_dir = fold_dir / spec.name
        scfg = _spec_config(cfg, spec, device)
        train = patches.select([c.case_id for c in inner_train]) + (syn_patches if spec.neogen else PatchSet([], [], syn_patches.images[:0], []))
        assert not set(train.case_ids) & set(val_patches.case_ids), "validation case in training"
        run = model_dir / "run"
        t0 = time.perf_counter()
        model, fit = train_classifier(train, inner_val_patches, scfg, run, autoencoder=ae, resume=(run / "checkpoint.pt").exists())
        t_train = time.perf_counter() - t0
        inner_p, _ = predict_probabilities(model, inner_val_patches.images, scfg.cls.train.device, tta=scfg.cls.tta)
        threshold = choose_threshold(inner_val_patches.labels, inner_p)
        p, spread = predict_probabilities(model, val_patches.images, scfg.cls.train.device, tta=scfg.cls.tta)
        from neonet_core.neocls.metrics import roc_auc

        result = {
            "fold": k,
            "model": spec.name,
            "classifier": spec.model,
            "neogen": spec.neogen,
            "threshold": threshold,
            "threshold_source": "Youden on this fold's inner validation (training patients only)",
            "auc": roc_auc(val_patches.labels, p),
            "inner_val_auc": roc_auc(inner_val_patches.labels, inner_p),
            "best_step": fit.best_step,
            "steps": fit.steps,
            "train": {"real": int((~train.synthetic).sum()), "synthetic": int(train.synthetic.sum()),
                      "positive": int(train.labels.sum()), "negative": int((1 - train.labels).sum()),
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
           fold: int | None = None, seed: int = 0, device: str | None = None, report: bool = True) -> Path:
    """Cross-validate ``models`` on ``manifest`` into ``out_dir``; returns the report path (or the
    fold folder when ``fold`` is given). Resumes an interrupted run in the same folder."""
    specs = parse_models(models, neogen)
    cfg, cases, folds = prepare(manifest, out_dir, n_folds, config, seed)
    if fold is not None and not 0 <= fold < n_folds:
        raise NeoNetError(f"--fold {fold}: must be between 0 and {n_folds - 1}")
    patches = cohort_patches(cases, cfg, out_dir)
    for k in [fold] if fold is not None else range(n_folds):
        run_fold(k, cfg, cases, folds, patches, specs, out_dir, seed, device)
    if fold is not None and not report:
        return Path(out_dir) / f"fold_{fold}"
    from neonet_core.neocls.report import write_report

    return write_report(out_dir)


__all__ = ["ModelSpec", "parse_models", "prepare", "run_fold", "run_cv", "choose_threshold", "cohort_patches"]
