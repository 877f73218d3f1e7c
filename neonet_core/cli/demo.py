"""``neonet demo``: the whole product on a phantom cohort, end to end, on a CPU.

Steps (everything lands in ``--out``, default ``neonet-demo``; rerunning resumes):

1. a phantom cohort (``cohort/``; known PNI rule, see its README.md);
2. ``neonet cv`` of PattenNet+NeoGen and a DenseNet121 baseline (``cv/report.md``);
3. ``neonet train all`` on the whole cohort (``bundle/``);
4. ``neonet predict`` on one case with its tumour mask (``prediction/``).

Settings: the tiny preset with the shorter schedules of :data:`neonet_core.demo_presets.DEMO`
(``--quick``: :data:`~neonet_core.demo_presets.QUICK`, a smaller cohort and 16^3 patches, with resnet18
as the baseline since DenseNet121 needs 32^3).
The config used is written to ``demo_config.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on a generated phantom cohort (cv report, bundle, one prediction)",
        description="Generate a phantom cohort, cross-validate the default classifier (the plain 3D CNN) against "
        "PattenNet (region pooling) + NeoGen, train a final bundle (NeoSeg, NeoGen, the default classifier) on the whole "
        "cohort and predict one case, printing where the report is. Minutes on 2 idle CPU "
        "cores (--quick: a smaller cohort, a smoke test of every step). Rerun the same command to resume.",
    )
    parser.add_argument("--out", type=Path, default=Path("neonet-demo"), help="output folder (default ./neonet-demo)")
    parser.add_argument("--quick", action="store_true", help="much smaller cohort and schedules (a few minutes)")
    from neonet_core.device import add_device_option

    add_device_option(parser, default="cpu")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.config import get_preset
    from neonet_core.demo_presets import DEMO, QUICK
    from neonet_core.fileio import write_text_atomic
    from neonet_core.manifest import load_case, read_manifest
    from neonet_core.device import resolve_device
    from neonet_core.phantom.cohort import generate_cohort
    from neonet_core.predict import load_predictor
    from neonet_core.workflows.cv import run_cv
    from neonet_core.workflows.training import train_all

    plan = QUICK if args.quick else DEMO
    device = resolve_device(args.device)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "demo_config.json"
    write_text_atomic(config_path, json.dumps(plan["config"], indent=2) + "\n")
    times = {}

    def step(name, message):
        print(f"[demo] {message}", flush=True)
        times[name] = time.perf_counter()

    def done(name):
        times[name] = time.perf_counter() - times[name]

    step("phantom", f"1/4 phantom cohort of {plan['cohort']['cases']} cases -> {out / 'cohort'}")
    manifest = generate_cohort(out / "cohort", seed=0, **plan["cohort"])
    done("phantom")
    step("cv", f"2/4 {plan['folds']}-fold cross-validation of {', '.join(plan['models'])} -> {out / 'cv'}")
    report = run_cv(manifest, out / "cv", plan["models"], plan["folds"], config_path, True, device=device)
    done("cv")
    model = plan["config"].get("cls", {}).get("model") or get_preset("tiny").cls.model
    step("train", f"3/4 training the final bundle (NeoSeg, NeoGen, classifier {model}) -> {out / 'bundle'}")
    bundle = train_all(manifest, config_path, out / "bundle", device, resume=True, cv_dir=out / "cv")
    done("train")
    case = read_manifest(manifest)[0]
    step("predict", f"4/4 predicting {case.case_id} -> {out / 'prediction'}")
    from neonet_core.cli.predict import write_outputs

    image, tumour, _ = load_case(case)
    prediction = load_predictor(bundle, device).predict(image, tumour)
    write_outputs(prediction, out / "prediction", case.case_id)
    done("predict")
    metrics = json.loads((out / "cv" / "metrics.json").read_text(encoding="utf-8"))["models"]
    print("[demo] cross-validated pooled AUC: " + ", ".join(f"{k} {v['pooled_auc']:.3f}" for k, v in sorted(metrics.items())))
    print(f"[demo] {case.case_id} (true label {case.label}): p(PNI) = {prediction.probability:.3f} +/- "
          f"{prediction.uncertainty:.3f} -> {prediction.class_name} (decision threshold {prediction.threshold:.3f})")
    print("[demo] minutes per step: " + ", ".join(f"{k} {v / 60:.1f}" for k, v in times.items()))
    print(f"[demo] report: {report}")
    return 0
