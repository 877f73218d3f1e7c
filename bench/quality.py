"""PattenNet (+NeoGen) against plain 3D CNNs, like for like, on three cohorts: one resumable command.

    .venv/bin/python bench/quality.py                      # the full comparison (128 cases, 44 PNI+, 5 folds)
    .venv/bin/python bench/quality.py --cases 40 --positives 14 --folds 3 --cohorts phantom   # a smaller try

For each cohort (``phantom``: default difficulty; ``hard``: difficulty 0.8; ``real``: tumours and
PNI-like extensions painted into the liver of the real abdominal MRI of Testing/Data) it writes the cohort with
``neonet phantom``, runs ``neonet cv`` with every model of ``--models`` (same folds, same protocol;
the phantom cohort adds the NeoGen ratio ablation) as one job per (cohort, fold), ``--jobs`` at a
time, then ``neonet cv --report`` and one table
``bench/results/quality/<cohort>.md``: pooled out-of-fold AUC with its bootstrap CI, mean +/- SD of
the fold AUCs, DeLong p against the plain CNN, the NeoGen gain (with minus without), NeoGen's
detectability and class fidelity, the commit and the time. Everything lands in ``--work``;
rerunning the command at the same commit resumes (finished folds are kept; ``<work>/<cohort>/commit.txt``
names the commit the folds trained with, and a resume at another commit is refused, so a table never
mixes code versions); ``--report-only`` writes the tables from the folds finished so far (the
``folds`` column says how many).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from neonet_core.demo_presets import tiny_with_schedules

ROOT = Path(__file__).resolve().parents[1]

# the baselines, the paper's PattenNet with and without NeoGen, the region-pooling variants (beyond the
# paper, with the same pooling on the plain CNN for a fair row) and the ratio ablation (none, half, 1:1)
MODELS = ["cnn:no-neogen", "pattennet:no-neogen", "pattennet:neogen", "pattennet-regions:no-neogen",
          "pattennet-regions:neogen", "resnet18:no-neogen", "densenet121:no-neogen"]
RATIO_ABLATION = ["pattennet-regions:neogen=0.5"]  # with "no" and "1:1" above: on the phantom cohort only (time)
BASELINE = "cnn"
# the tiny preset with shorter schedules (epochs per stage) for the whole default command (3 cohorts x 5 folds,
# NeoGen + 7 classifiers per fold, 8 on the phantom), sized for 150 min on 2 idle CPU cores. The earlier
# schedule (ae 3 epochs on 4 crops per case, ldm 30, controlnet 15) took ~181 min on 2026-12-03; this one cuts
# NeoGen only (~5 instead of ~10 single-thread min per fold job; bench/results/quality/wall_time.md). The
# classifier keeps 30 epochs: at 20-24 the plain CNN lost 0.1-0.2 AUC on two phantom folds. Written to
# <work>/config.json and passed as ``neonet cv --config`` unless --config names another.
BENCH_CONFIG = tiny_with_schedules({"ae": 2, "ldm": 20, "controlnet": 10, "cls": 30}, sampling_steps=30,
                                   ae={"crops_per_case": 2})
COHORTS = {
    "phantom": ["--difficulty", "0.5"],
    "hard": ["--difficulty", "0.8"],
    # the real upper-abdominal MRI of Testing/Data, tumours grown inside its liver (TotalSegmentator label 5)
    "real": ["--difficulty", "0.5", "--background", str(ROOT / "Testing" / "Data" / "abdomen_mr.nii.gz"),
             "--site-mask", str(ROOT / "Testing" / "Data" / "abdomen_mr_organs.nii.gz"), "--site-labels", "5"],
}


def neonet(*args: str, threads: int = 2, log: Path | None = None) -> None:
    """Run the ``neonet`` CLI of this checkout; a failure raises with the log's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "neonet_core.cli.main", "--progress", "none", *args]
    with open(log or os.devnull, "a", encoding="utf-8") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if code:
        tail = log.read_text(encoding="utf-8")[-2000:] if log else ""
        raise SystemExit(f"`neonet {' '.join(args)}` failed (exit {code}):\n{tail}")


def models_of(name: str, args) -> list[str]:
    """The ``--models`` for cohort ``name``: the default list gets the ratio ablation on the phantom only."""
    return args.models + (RATIO_ABLATION if name == "phantom" and args.models == MODELS else [])


def prepare_cohort(name: str, args) -> list[str]:
    """Write cohort ``name`` (once) and its cv plan, patch and crop caches (before the parallel fold
    jobs, which then only read them); returns the ``neonet cv`` arguments of its fold jobs."""
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "cohort" / "manifest.csv"
    if not manifest.exists():
        neonet("phantom", "--out", str(work / "cohort"), "--cases", str(args.cases), "--positives", str(args.positives),
               "--seed", "0", *COHORTS[name], log=work / "phantom.log")
    cv = work / "cv"
    if not (cv / "cv_plan.json").exists() and not args.report_only:
        from neonet_core.patches import cohort_crops, cohort_patches
        from neonet_core.workflows.cv import prepare

        cfg, cases, _ = prepare(manifest, cv, args.folds, args.config, args.seed)
        cohort_patches(cases, cfg, cv)
        cohort_crops(cases, cfg, cfg.ae.crops_per_case, cfg.seed, cv)
    models = [a for m in models_of(name, args) for a in ("--model", m)]
    return ["cv", "--manifest", str(manifest), "--out", str(cv), "--folds", str(args.folds), "--config", args.config,
            "--seed", str(args.seed), "--device", "cpu", *models]


def run_all_folds(cohorts: dict[str, list[str]], args) -> None:
    """Every (cohort, fold) as one ``neonet cv --fold`` job, ``--jobs`` at a time (one pool over all
    cohorts, so no core idles while a cohort's last fold runs); finished folds are skipped by cv itself."""
    threads = max(1, args.threads // args.jobs)
    jobs = [(name, k) for name in cohorts for k in range(args.folds)]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: neonet(*cohorts[job[0]], "--fold", str(job[1]), threads=threads,
                                         log=args.work / job[0] / f"fold_{job[1]}.log"), jobs))


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def table(name: str, cv: Path, wall_s: float | None, commit: str) -> str:
    """The Markdown table of one cohort from its cv folder (``wall_s`` None: a --report-only invocation;
    ``commit``: the code its folds trained with)."""
    data = json.loads((cv / "metrics.json").read_text(encoding="utf-8"))
    metrics, delong = data["models"], data["delong"]
    quality = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(cv.glob("fold_*/neogen_quality.json"))]
    baseline = BASELINE if BASELINE in metrics else None

    def p_vs_baseline(model: str):
        for d in delong:
            if {d["model_a"], d["model_b"]} == {model, baseline}:
                return d["p_value"]
        return None

    plan = json.loads((cv / "cv_plan.json").read_text(encoding="utf-8"))
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(cv.glob("fold_*/*/result.json"))]
    neogen_s = {r["fold"]: sum(v for k, v in r["timings_s"].items() if k.startswith("neogen")) for r in results}
    cpu_min = (sum(neogen_s.values()) + sum(r["timings_s"]["classifier_train_s"] for r in results)) / 60
    epochs = ", ".join(f"{stage} {plan['config'][stage]['train']['epochs']}" for stage in ("ae", "ldm", "controlnet", "cls"))
    epochs += f" (autoencoder on {plan['config']['ae']['crops_per_case']} random crops per case)"
    lines = [f"# Quality: {name} cohort", "",
             f"`python bench/quality.py` at commit {commit}; cohort `{' '.join(a.replace(str(ROOT) + os.sep, '') for a in COHORTS[name])}`, {len(plan['folds'])} cases, "
             f"{plan['n_folds']} folds; preset {plan['config']['preset']}, epochs {epochs}; " + ("tables only (`--report-only`), no training in the last invocation; " if wall_s is None else
             f"wall time {wall_s / 60:.0f} min for the whole command (all cohorts, their folds as parallel jobs) in the last invocation; ") +
             f"{cpu_min:.0f} min of training summed over the finished folds (one thread each).", "",
             "| model | folds | pooled AUC [95% CI] | mean +/- SD of folds | DeLong p vs cnn | NeoGen gain (pooled) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for model, m in sorted(metrics.items(), key=lambda kv: -kv[1]["pooled_auc"]):
        lo, hi = m["pooled_auc_ci95"]
        base = model.split("+neogen")[0] if "+neogen" in model else None
        gain = m["pooled_auc"] - metrics[base]["pooled_auc"] if base in metrics else None
        lines.append(f"| {model} | {len(m['folds'])}/{plan['n_folds']} | {_f(m['pooled_auc'])} [{_f(lo)}, {_f(hi)}] | {_f(m['mean_auc'])} +/- {_f(m['sd_auc'])} | "
                     f"{'-' if model == baseline else _f(p_vs_baseline(model))} | {_f(gain) if gain is not None else '-'} |")
    if quality:
        det = [q["detectability"]["auc"] for q in quality]
        decoded = [q.get("detectability_vs_round_trip", {}).get("auc", float("nan")) for q in quality]
        fid = [q["class_fidelity"]["auc"] for q in quality]
        lines += ["", f"NeoGen over {len(quality)} folds: detectability AUC {_f(sum(det) / len(det))} (target <= 0.70; "
                  f"{_f(sum(decoded) / len(decoded))} against the real patches' autoencoder round trips), "
                  f"class fidelity AUC {_f(sum(fid) / len(fid))} (target >= 0.70)."]
    lines += ["", f"Full report (report.md, metrics.json, out-of-fold predictions, ROC and learning curves, per-fold NeoGen "
              f"quality and gallery): [{name}_cv/]({name}_cv/).", ""]
    return "\n".join(lines)


REPORT_FILES = ("cv_plan.json", "report.md", "metrics.json", "oof_predictions.csv", "roc.png", "learning_curves.png")
FOLD_FILES = ("neogen_quality.json", "gallery.png", "splits.json")


def copy_report(cv: Path, dest: Path) -> None:
    """The cv folder's report files (not its weights or patches) into ``dest``, beside the table."""
    import shutil

    for name in REPORT_FILES:
        if (cv / name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(cv / name, dest / name)
    models = json.loads((cv / "metrics.json").read_text(encoding="utf-8"))["models"]
    finished = {k for m in models.values() for k in m["folds"]}  # folds in the table (not those still running)
    for fold in sorted(cv / f"fold_{k}" for k in finished):
        for name in FOLD_FILES:
            if (fold / name).exists():
                (dest / fold.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(fold / name, dest / fold.name / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "quality", help="work folder (resumable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality", help="where the tables go")
    parser.add_argument("--cohorts", nargs="+", choices=list(COHORTS), default=list(COHORTS))
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--cases", type=int, default=128)
    parser.add_argument("--positives", type=int, default=44)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--config", help="preset or JSON config (default: the bench schedules, BENCH_CONFIG)")
    parser.add_argument("--seed", type=int, default=0)
    # 3 at once on 2 cores: the 15 fold jobs then end together instead of one running alone at the end
    parser.add_argument("--jobs", type=int, default=3, help="folds run at once (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads shared by the jobs")
    parser.add_argument("--report-only", action="store_true", help="no training: tables from the folds finished so far")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.config is None and not args.report_only:
        args.work.mkdir(parents=True, exist_ok=True)
        args.config = str(args.work / "config.json")
        Path(args.config).write_text(json.dumps(BENCH_CONFIG, indent=2) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    cohorts = {name: prepare_cohort(name, args) for name in args.cohorts}
    if not args.report_only:
        for name in args.cohorts:  # the code the folds train with (a resume at another commit is refused here)
            trained_at = args.work / name / "commit.txt"
            if trained_at.exists() and trained_at.read_text(encoding="utf-8").strip() != head:
                raise SystemExit(f"{trained_at}: the folds of {name} were trained at commit "
                                 f"{trained_at.read_text(encoding='utf-8').strip()}; resume from that commit or use a new --work")
            trained_at.write_text(head + "\n", encoding="utf-8")
        run_all_folds(cohorts, args)
    wall_s = None if args.report_only else time.perf_counter() - t0
    for name in args.cohorts:
        cv = args.work / name / "cv"
        neonet("cv", "--report", str(cv), log=args.work / name / "report.log")
        trained_at = args.work / name / "commit.txt"
        text = table(name, cv, wall_s, trained_at.read_text(encoding="utf-8").strip() if trained_at.exists() else head)
        (args.out / f"{name}.md").write_text(text, encoding="utf-8")
        copy_report(cv, args.out / f"{name}_cv")
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
