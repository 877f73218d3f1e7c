"""Orchestration: training into a bundle and cross-validation, called by the CLI, the demo and scripts.

Nothing below ``workflows`` imports it: stages (NeoSeg, NeoGen, NeoCls) know nothing of runs,
folds or bundles' other networks. :mod:`~neonet_core.workflows.training` trains a stage, NeoGen,
the synthetic balance, the classifier or everything into one bundle;
:mod:`~neonet_core.workflows.cv` runs leakage-safe k-fold cross-validation.
"""
