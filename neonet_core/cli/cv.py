"""``neonet cv``: leakage-safe k-fold cross-validation of PattenNet (+NeoGen) and baselines."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from neonet_core.device import add_device_option
    from neonet_core.neocls.models import classifier_names

    parser = subparsers.add_parser(
        "cv",
        help="cross-validate classifiers (stratified, patient-grouped folds; NeoGen inside each training fold)",
        description="K-fold cross-validation with folds stratified by label and grouped by patient_id (fixed seed). "
        "In every fold, everything that learns (NeoGen autoencoder, diffusion model, ControlNet, classifier, "
        "threshold) sees the training fold only; synthetic patches are added to training only; validation is "
        "real cases only. Writes out-of-fold predictions, per-fold and pooled AUC (bootstrap 95% CI), best-fold AUC "
        "(labelled as such), accuracy/sensitivity/specificity, ROC curves, DeLong tests and report.md. Rerun the same "
        "command to resume after an interruption (finished folds are skipped).",
    )
    parser.add_argument("--manifest", type=Path, help="cohort manifest CSV with labels and tumour masks")
    parser.add_argument("--out", type=Path, help="cv folder (created; reused to resume)")
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument(
        "--model", action="append", dest="models", metavar="MODEL",
        help=f"{' | '.join(classifier_names())}, optionally with :neogen, :no-neogen or :neogen=R "
        "(a share R in [0, 1] of the 1:1 synthetic patches: the ratio ablation); repeat to compare models "
        "(default pattennet). Without a suffix NeoGen balancing is on unless --no-neogen.",
    )
    parser.add_argument("--no-neogen", action="store_true", help="no synthetic balancing for models without a :neogen suffix")
    parser.add_argument("--config", default="tiny", help="preset (tiny, paper) or JSON config file (default tiny)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment and training seed (default 0)")
    parser.add_argument("--fold", type=int, help="run only this fold (0-based) into the shared --out folder")
    add_device_option(parser)
    parser.add_argument("--report", type=Path, metavar="DIR", help="aggregate the complete folds of cv folder DIR into its report (no training)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from neonet_core.errors import InputError
    from neonet_core.workflows.cv import run_cv
    from neonet_core.neocls.report import write_report

    if args.report is not None and args.manifest is None:
        path = write_report(args.report)
        print(f"report: {path}")
        return 0
    if args.manifest is None or args.out is None:
        raise InputError(None, "give --manifest and --out (or --report DIR to aggregate an existing cv folder)")
    path = run_cv(args.manifest, args.out, args.models or ["pattennet"], args.folds, args.config, not args.no_neogen,
                  args.fold, args.seed, args.device, report=args.fold is None or args.report is not None)
    if path.name == "report.md":
        print(f"report: {path}")
    else:
        print(f"fold finished: {path} (aggregate with `neonet cv --report {args.out}`)")
    return 0
