"""Train the final classifier into a model bundle (``neonet train cls``).

The manifest's real cases are split by patient into inner-training and inner-validation
(stratified, ``ClsConfig.val_fraction``). With ``neogen`` the bundle's NeoGen networks balance the
inner-training cases 1:1 (synthetic patches from inner-training minority cases only). The
inner-validation cases pick the best epoch and the decision threshold (Youden), unless a cv folder
is given: then the threshold is the Youden threshold of that run's pooled out-of-fold predictions
for the same model, and its metrics go into the bundle too.

Bundle additions: network ``cls`` (config: cls, ae, preprocess sections), ``threshold``,
``threshold_source``, ``class_names``, ``cohort`` (training cohort summary), ``cv`` (when given).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


from neonet_core.bundle import add_network, read_or_new_bundle_info, write_bundle_info
from neonet_core.config import NeoNetConfig, load_config
from neonet_core.errors import BundleError, NeoNetError
from neonet_core.neocls import folds as F
from neonet_core.neocls.data import real_patches, synthetic_patches
from neonet_core.neocls.stage import NETWORK, network_config, predict_probabilities, train_classifier

CLASS_NAMES = ["PNI-", "PNI+"]


def _cohort_summary(manifest, real, synthetic) -> dict:
    labels = [int(c.label) for c in real]
    return {
        "manifest": str(Path(manifest).resolve()),
        "cases": len(real),
        "patients": len({c.patient_id for c in real}),
        "positive": int(sum(labels)),
        "negative": len(labels) - int(sum(labels)),
        "synthetic": len(synthetic),
    }


def _cv_threshold(cv_dir, model_name: str) -> tuple[float, dict]:
    metrics_path = Path(cv_dir) / "metrics.json"
    if not metrics_path.exists():
        raise NeoNetError(f"{cv_dir}: no metrics.json; run `neonet cv --report {cv_dir}` first")
    models = json.loads(metrics_path.read_text(encoding="utf-8"))["models"]
    if model_name not in models:
        raise NeoNetError(f"{metrics_path}: has no model {model_name!r} (it has: {', '.join(sorted(models))})")
    m = models[model_name]
    return float(m["youden_pooled"]["threshold"]), {"folder": str(Path(cv_dir).resolve()), "model": model_name, **m}


def train_cls(manifest, config="tiny", bundle_dir="bundle", resume: bool = False, neogen: bool = True,
              cv_dir=None, model: str | None = None) -> Path:
    """Train the classifier on ``manifest`` and add it to ``bundle_dir``; returns the bundle folder.

    ``config.cls.train`` says how (device, epochs, seed: the command line's overrides are already
    in it). PattenNet needs the bundle's ``autoencoder`` (``neonet train ae``); ``neogen`` needs its
    ``ldm`` and ``controlnet`` too. A bundle that already holds a classifier is refused unless ``resume``.
    """
    from neonet_core.manifest import read_manifest
    from neonet_core.neocls.cv import _load_autoencoder, fold_synthetic

    cfg = config if isinstance(config, NeoNetConfig) else load_config(str(config))
    cfg = NeoNetConfig.from_dict(cfg.to_dict())
    if model:
        cfg.cls.model = model
    bundle_dir = Path(bundle_dir)
    info = read_or_new_bundle_info(bundle_dir, cfg.to_dict())
    if NETWORK in info.get("networks", {}) and not resume:
        raise NeoNetError(f"{bundle_dir}: the bundle already holds a classifier; use --resume or a new folder")
    have = set(info.get("networks", {}))
    need = ({"autoencoder"} if cfg.cls.model == "pattennet" else set()) | ({"autoencoder", "ldm", "controlnet"} if neogen else set())
    if need - have:
        raise BundleError(bundle_dir, f"misses {', '.join(sorted(need - have))}; run `neonet train ae/ldm/controlnet` into it first "
                          "(or `neonet train all`), or train with --no-neogen and a baseline --model")
    real = [c for c in read_manifest(manifest, require_labels=True, require_tumor_masks=True) if not c.synthetic]
    inner_train, inner_val = F.inner_split(real, cfg.cls.val_fraction, cfg.cls.train.seed)
    F.check_no_leakage(inner_train, inner_val)
    synthetic = fold_synthetic(bundle_dir, inner_train, bundle_dir / "runs" / "synthetic", cfg.cls.train.seed, cfg.cls.train.device) if neogen else []
    F.check_no_leakage(inner_train + synthetic, inner_val, synthetic)
    patches = real_patches(real, cfg)
    train = patches.select([c.case_id for c in inner_train]) + synthetic_patches(synthetic)
    val = patches.select([c.case_id for c in inner_val])
    ae = _load_autoencoder(bundle_dir) if cfg.cls.model == "pattennet" else None
    run = bundle_dir / "runs" / NETWORK
    net, fit = train_classifier(train, val, cfg, run, autoencoder=ae, resume=resume and (run / "checkpoint.pt").exists())
    name = f"{cfg.cls.model}+neogen" if neogen else cfg.cls.model
    if cv_dir is not None:
        threshold, cv = _cv_threshold(cv_dir, name)
        source = f"Youden on the pooled out-of-fold predictions of {Path(cv_dir).resolve()}"
    else:
        from neonet_core.neocls.cv import choose_threshold

        p, _ = predict_probabilities(net, val.images, cfg.cls.train.device, tta=cfg.cls.tta)
        threshold, cv = choose_threshold(val.labels, p), None
        source = f"Youden on {len(val)} held-out training patients (inner validation)"
    info = read_or_new_bundle_info(bundle_dir, cfg.to_dict())
    info.setdefault("config", {})["cls"] = dataclasses.asdict(cfg.cls)
    info["config"]["preprocess"] = dataclasses.asdict(cfg.preprocess)
    add_network(bundle_dir, info, NETWORK, net.state_dict(), {**network_config(cfg), "model_name": name})
    info.update({
        "threshold": float(threshold),
        "threshold_source": source,
        "class_names": CLASS_NAMES,
        "cohort": _cohort_summary(manifest, real, synthetic),
        "name": info.get("name") or bundle_dir.resolve().name,
    })
    info.setdefault("training", {})[NETWORK] = {"steps": fit.steps, "best_step": fit.best_step, "best_score": fit.best_score,
                                                "inner_train": len(train), "inner_val": len(val)}
    if cv is not None:
        info["cv"] = cv
    write_bundle_info(bundle_dir, info)
    return bundle_dir


__all__ = ["train_cls", "CLASS_NAMES"]
