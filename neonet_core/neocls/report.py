"""Aggregate a cross-validation folder into predictions, metrics, ROC curves and ``report.md``.

Reads ``cv_plan.json`` and every complete ``fold_k/<model>/result.json``; folds still missing are
listed in the report (``neonet cv --report`` can be run at any time).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from neonet_core.errors import NeoNetError
from neonet_core.fileio import atomic_path, write_text_atomic
from neonet_core.neocls import metrics as M


def collect(out_dir) -> tuple[dict, dict[str, list[dict]]]:
    """(plan, {model name: [fold results sorted by fold]}) of a cv folder."""
    out_dir = Path(out_dir)
    plan_path = out_dir / "cv_plan.json"
    if not plan_path.exists():
        raise NeoNetError(f"{out_dir}: not a cv folder (no cv_plan.json)")
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    results: dict[str, list[dict]] = {}
    for path in sorted(out_dir.glob("fold_*/*/result.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        results.setdefault(r["model"], []).append(r)
    for name in results:
        results[name].sort(key=lambda r: r["fold"])
    return plan, results


def model_metrics(fold_results: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Per-fold and pooled metrics of one model (see report.md for their meaning)."""
    rows = [dict(case, fold=r["fold"], threshold=r["threshold"]) for r in fold_results for case in r["cases"]]
    y = np.array([r["label"] for r in rows])
    p = np.array([r["probability"] for r in rows])
    fold_aucs = {r["fold"]: r["auc"] for r in fold_results}
    finite = [a for a in fold_aucs.values() if np.isfinite(a)]
    best = max(fold_aucs, key=lambda k: -1 if not np.isfinite(fold_aucs[k]) else fold_aucs[k])
    pooled = M.roc_auc(y, p)
    ci = M.bootstrap_auc_ci(y, p, n_boot=n_boot, seed=seed)
    youden = M.youden_threshold(y, p)
    pred = np.array([r["probability"] >= r["threshold"] for r in rows])
    fold_of = np.array([r["fold"] for r in rows])
    other_folds = {k: M.youden_threshold(y[fold_of != k], p[fold_of != k]).threshold if len(fold_aucs) > 1 else float("nan")
                   for k in fold_aucs}
    return {
        "folds": sorted(fold_aucs),
        "fold_auc": fold_aucs,
        "mean_auc": float(np.mean(finite)) if finite else float("nan"),
        "sd_auc": float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan"),
        "pooled_auc": pooled,
        "pooled_auc_ci95": list(ci),
        "best_fold": int(best),
        "best_fold_auc": fold_aucs[best],
        "youden_pooled": vars(youden),
        "at_fold_thresholds": _rates(y, pred),
        "at_other_folds_thresholds": {
            "thresholds": other_folds,
            **_rates(y, np.array([pi >= other_folds[k] for pi, k in zip(p, fold_of)])),
        },
        "n_cases": len(y),
        "n_positive": int(y.sum()),
    }


def _rates(y: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, sensitivity and specificity of boolean ``predicted`` against labels ``y``."""
    tp, tn = int(np.sum(predicted & (y == 1))), int(np.sum(~predicted & (y == 0)))
    return {"accuracy": (tp + tn) / max(1, len(y)), "sensitivity": tp / max(1, int(y.sum())),
            "specificity": tn / max(1, int((1 - y).sum()))}


def _comparisons(results: dict[str, list[dict]]) -> list[dict]:
    """DeLong tests between every pair of models on the cases both predicted."""
    preds = {name: {c["case_id"]: (c["label"], c["probability"]) for r in rs for c in r["cases"]} for name, rs in results.items()}
    names, out = sorted(preds), []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(preds[a]) & set(preds[b]))
            y = np.array([preds[a][c][0] for c in common])
            if len(common) < 3 or y.min() == y.max():
                continue
            d = M.delong_test(y, [preds[a][c][1] for c in common], [preds[b][c][1] for c in common])
            out.append({"model_a": a, "model_b": b, "n_cases": len(common), **vars(d)})
    return out


def _plot_roc(results: dict[str, list[dict]], metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for name, rs in sorted(results.items()):
        y = [c["label"] for r in rs for c in r["cases"]]
        p = [c["probability"] for r in rs for c in r["cases"]]
        if len(set(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        lo, hi = metrics[name]["pooled_auc_ci95"]
        ax.plot(fpr, tpr, label=f"{name}: AUC {metrics[name]['pooled_auc']:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8, label="chance")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("Out-of-fold ROC (pooled over folds)")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _plot_learning_curves(out_dir: Path, results: dict[str, list[dict]], path: Path) -> bool:
    """Per-fold training loss and inner-validation AUC of every model (from each run's history.jsonl)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neonet_core.engine import read_history

    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = False
    for m, (name, rs) in enumerate(sorted(results.items())):
        for r in rs:
            history = out_dir / f"fold_{r['fold']}" / name / "run" / "history.jsonl"
            if not history.exists():
                continue
            records = read_history(history)
            train = [(h["step"], h["loss"]) for h in records if "loss" in h]
            val = [(h["step"], h["validation"].get("auc")) for h in records if "validation" in h]
            colour, label = colours[m % len(colours)], name if r is rs[0] else None
            if train:
                loss_ax.plot(*zip(*train), color=colour, alpha=0.6, lw=0.8, label=label)
            if val:
                auc_ax.plot(*zip(*val), color=colour, alpha=0.6, lw=0.8, label=label)
            drawn = drawn or bool(train)
    if not drawn:
        plt.close(fig)
        return False
    loss_ax.set(xlabel="step", ylabel="training loss (BCE)", title="training loss, one line per fold")
    auc_ax.set(xlabel="step", ylabel="AUC", title="inner-validation AUC, one line per fold", ylim=(0, 1))
    auc_ax.axhline(0.5, ls="--", c="grey", lw=0.8)
    loss_ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def _neogen_quality(out_dir: Path, n_folds: int) -> list[str]:
    """The detectability / class-fidelity section from each fold's neogen_quality.json."""
    from neonet_core.workflows.quality import QUALITY_FILE

    rows = []
    for k in range(n_folds):
        path = out_dir / f"fold_{k}" / QUALITY_FILE
        if path.exists():
            q = json.loads(path.read_text(encoding="utf-8"))
            det, fid = q["detectability"], q["class_fidelity"]
            decoded = q.get("detectability_vs_round_trip", {}).get("auc", float("nan"))
            rows.append((k, det["auc"], decoded, fid["auc"], fid["real_cv_auc"], det["top_features"][0]["name"] if det["top_features"] else "-"))
    if not rows:
        return []
    lines = ["## NeoGen: detectability and class fidelity", "",
             "Detectability: cross-validated AUC of a real-vs-synthetic classifier on hand features (same class; target "
             "<= 0.70, 0.5 = indistinguishable). Class fidelity: a classifier trained on the fold's real training patches "
             "ranks synthetic PNI+ above synthetic PNI- (target >= 0.70); the reference is its CV AUC on the real patches. "
             "'vs real round trips': detectability against the real patches passed through the autoencoder (what is left "
             "beyond the decoded look, which the classifiers' round-trip control neutralises). "
             "Gallery of real vs synthetic patches: `fold_k/gallery.png`.", "",
             "| fold | detectability AUC | vs real round trips | class fidelity AUC | reference (real) | most separating feature |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {_f(d)} | {_f(dd)} | {_f(f)} | {_f(r)} | {t} |" for k, d, dd, f, r, t in rows]
    finite = [[r[i] for r in rows if r[i] is not None and np.isfinite(r[i])] for i in (1, 2, 3, 4)]
    lines.append("| mean | " + " | ".join(_f(np.mean(v)) if v else "n/a" for v in finite) + " | |")  # of the folds that have it
    return lines + [""]


def _oof_csv(results: dict[str, list[dict]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "fold", "case_id", "patient_id", "label", "probability", "uncertainty", "fold_threshold", "predicted"])
    for name, rs in sorted(results.items()):
        for r in rs:
            for c in r["cases"]:
                w.writerow([name, r["fold"], c["case_id"], c["patient_id"], c["label"], f"{c['probability']:.6f}",
                            f"{c['uncertainty']:.6f}", f"{r['threshold']:.6f}", int(c["probability"] >= r["threshold"])])
    return buf.getvalue()


def _f(x, digits=3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _markdown(plan: dict, results: dict, metrics: dict, comparisons: list[dict], quality: list[str], curves: bool) -> str:
    n_folds = plan["n_folds"]
    folds = plan["folds"]
    lines = [
        "# NeoNet cross-validation report",
        "",
        f"Cohort: `{plan['manifest']}`: {len(folds)} real cases. {n_folds}-fold cross-validation, stratified by the "
        f"PNI label and grouped by patient (all cases of a patient in one fold), seed {plan['seed']}, preset "
        f"`{plan['config'].get('preset')}`.",
        "",
        "How to read this: every case is predicted exactly once, by the model of the fold that held it out. "
        "In each fold everything that learns (the NeoGen autoencoder, diffusion model and ControlNet, the "
        "classifier and its decision threshold) was fitted on that fold's training patients only; "
        "synthetic (NeoGen) patches were added to training only and generated from training cases only; "
        "validation cases are real. Image normalisation is per patch (no cohort statistics).",
        "",
        "Models: `pattennet` = frozen NeoGen autoencoder encoder + dual attention blocks + head; `densenet121`, "
        "`resnet18`, `cnn` = 3D baselines trained from scratch; `+neogen` = training folds balanced 1:1 with "
        "synthetic PNI patches (`+neogenR`: a share R of those); with synthetic patches the real majority-class patches "
        "are swapped for their autoencoder round trip as often, so the decoded look carries no label. "
        "PattenNet without `+neogen` still uses the fold's autoencoder as its encoder.",
        "",
        "## AUC",
        "",
        "| model | folds done | mean +/- SD of fold AUCs | pooled out-of-fold AUC [95% CI] | best single fold (optimistic) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in sorted(metrics.items()):
        lo, hi = m["pooled_auc_ci95"]
        lines.append(f"| {name} | {len(m['folds'])}/{n_folds} | {_f(m['mean_auc'])} +/- {_f(m['sd_auc'])} | "
                     f"{_f(m['pooled_auc'])} [{_f(lo)}, {_f(hi)}] | {_f(m['best_fold_auc'])} (fold {m['best_fold']}) |")
    lines += [
        "",
        "The pooled AUC ranks all out-of-fold predictions together; its 95% CI is a stratified bootstrap "
        "(positives and negatives resampled separately, 2000 resamples). The best single fold is what a paper "
        "reporting its best fold would quote: it is an optimistic figure, shown only for comparison.",
        "",
        "## Per-fold AUC",
        "",
        "| model | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " |",
        "| --- |" + " --- |" * n_folds,
    ]
    for name, m in sorted(metrics.items()):
        lines.append(f"| {name} | " + " | ".join(_f(m["fold_auc"].get(k)) if k in m["fold_auc"] else "-" for k in range(n_folds)) + " |")
    lines += [
        "",
        "## Accuracy, sensitivity, specificity",
        "",
        "| model | at the other folds' threshold: acc / sens / spec | at each fold's inner-validation threshold: acc / sens / spec "
        "| at the pooled Youden threshold (optimistic): threshold, acc / sens / spec |",
        "| --- | --- | --- | --- |",
    ]

    def rates(r: dict) -> str:
        return f"{_f(r['accuracy'])} / {_f(r['sensitivity'])} / {_f(r['specificity'])}"

    for name, m in sorted(metrics.items()):
        y = m["youden_pooled"]
        lines.append(f"| {name} | {rates(m['at_other_folds_thresholds'])} | {rates(m['at_fold_thresholds'])} | {_f(y['threshold'])}, {rates(y)} |")
    lines += [
        "",
        "The other folds' threshold of fold k maximises Youden's J on the out-of-fold predictions of every other fold "
        "(K-1 of K folds, none of fold k's cases; the production threshold of `neonet train cls --cv-dir` "
        "is chosen the same way on all folds). The inner-validation threshold maximises it on the fold's ~20 inner "
        "validation patients: noisy. The pooled Youden threshold is chosen on the out-of-fold predictions themselves, "
        "so its figures are optimistic.",
        "",
    ]
    if comparisons:
        lines += ["## DeLong test between models (pooled out-of-fold predictions, same cases)", "",
                  "| model A | model B | cases | AUC A | AUC B | difference | z | p (two-sided) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c in comparisons:
            lines.append(f"| {c['model_a']} | {c['model_b']} | {c['n_cases']} | {_f(c['auc_a'])} | {_f(c['auc_b'])} | "
                         f"{_f(c['difference'])} | {_f(c['z'], 2)} | {_f(c['p_value'], 4)} |")
        lines.append("")
    missing = {name: sorted(set(range(n_folds)) - set(m["folds"])) for name, m in metrics.items()}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        lines += ["## Incomplete", "", *[f"- {k}: folds {v} not finished (rerun `neonet cv` with the same --out to resume)" for k, v in missing.items()], ""]
    lines += quality
    if curves:
        lines += ["## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    lines += _settings(plan["config"], results)
    lines += ["Files: `oof_predictions.csv` (one row per model and case), `metrics.json`, `roc.png`, `learning_curves.png`, "
              "`fold_k/<model>/result.json`, `fold_k/neogen_quality.json`, `fold_k/gallery.png`.", ""]
    return "\n".join(lines)


def _augmentation(aug) -> str:
    """One line describing a stored AugmentConfig (dict; a bool in earlier runs)."""
    if not isinstance(aug, dict):
        return "on" if aug else "off"
    if not aug.get("enabled", True):
        return "off"
    parts = [f"flips p={aug.get('flip_prob')}"]
    if aug.get("rot90", "none") != "none":
        parts.append(f"90-degree turns ({aug['rot90']})")
    if aug.get("shift"):
        parts.append(f"shifts +/-{aug['shift']} voxels ({aug.get('shift_mode')})")
    if aug.get("rotate_deg"):
        parts.append(f"trilinear rotation +/-{aug['rotate_deg']} deg")
    parts.append(f"gain/offset +/-{aug.get('gain')}/{aug.get('offset')}")
    return ", ".join(parts)


def _train_protocol(train: dict) -> str:
    """The schedule and which weights are published, from a stored TrainConfig dict."""
    schedule = train.get("lr_schedule", "constant")
    warm = train.get("warmup_fraction") or train.get("warmup_steps")
    ema = train.get("ema_decay", 0.0)
    select = train.get("select", "best")
    return (f"lr {schedule}{f' with warm-up {warm}' if warm else ''}{f', EMA {ema}' if ema else ''}, "
            f"{'final' if select == 'final' else 'best inner-validation'} weights")


def _settings(config: dict, results: dict) -> list[str]:
    """The training settings and the mean training-set composition per model (report section)."""
    pre, cls = config.get("preprocess", {}), config.get("cls", {})
    epochs = {k: config.get(k, {}).get("train", {}).get("epochs") for k in ("ae", "ldm", "controlnet", "cls")}
    lines = [
        "## Settings",
        "",
        f"- TLCR: {pre.get('roi_mm')} mm cube, {pre.get('patch_size')}^3 voxels per patch.",
        f"- NeoGen epochs: autoencoder {epochs['ae']}, LDM {epochs['ldm']}, ControlNet {epochs['controlnet']}.",
        f"- Classifiers: {epochs['cls']} epochs, batch {cls.get('train', {}).get('batch_size')}, lr {cls.get('train', {}).get('lr')}, "
        f"{_train_protocol(cls.get('train', {}))}; augmentation {_augmentation(cls.get('augment'))}, real and synthetic patches alike. "
        f"PattenNet: {cls.get('encoder_blocks') or 'all'} frozen "
        f"encoder block(s), {cls.get('num_dab')} DAB(s).",
        "",
        "| model | mean training patches per fold: real + synthetic (PNI+ / PNI- in all) | inner validation |",
        "| --- | --- | --- |",
    ]
    for name, rs in sorted(results.items()):
        t = [r["train"] for r in rs]
        mean = {k: np.mean([x[k] for x in t]) for k in ("real", "synthetic", "positive", "negative", "inner_val")}
        lines.append(f"| {name} | {mean['real']:.0f} + {mean['synthetic']:.0f} ({mean['positive']:.0f} / "
                     f"{mean['negative']:.0f}) | {mean['inner_val']:.0f} |")
    return lines + [""]


def write_report(out_dir, n_boot: int = 2000) -> Path:
    """Write ``oof_predictions.csv``, ``metrics.json``, ``roc.png`` and ``report.md``; returns report.md."""
    out_dir = Path(out_dir)
    plan, results = collect(out_dir)
    if not results:
        raise NeoNetError(f"{out_dir}: no complete fold yet (no fold_*/<model>/result.json)")
    metrics = {name: model_metrics(rs, n_boot) for name, rs in results.items()}
    comparisons = _comparisons(results)
    write_text_atomic(out_dir / "oof_predictions.csv", _oof_csv(results))
    write_text_atomic(out_dir / "metrics.json", json.dumps({"models": metrics, "delong": comparisons}, indent=2, default=float) + "\n")
    _plot_roc(results, metrics, out_dir / "roc.png")
    curves = _plot_learning_curves(out_dir, results, out_dir / "learning_curves.png")
    path = out_dir / "report.md"
    write_text_atomic(path, _markdown(plan, results, metrics, comparisons, _neogen_quality(out_dir, plan["n_folds"]), curves))
    return path


__all__ = ["write_report", "collect", "model_metrics"]
