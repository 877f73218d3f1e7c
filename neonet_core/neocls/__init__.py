"""NeoCls: PattenNet (frozen NeoGen encoder + 3D dual attention), baseline 3D CNNs, training, prediction.

Modules: :mod:`models` (the classifier registry, ``CLASSIFIERS``: every model name, its builder and
what it needs; the ``--model`` choices), :mod:`dab` (dual attention block), :mod:`pattennet`
(PattenNet, Grad-CAM), :mod:`baselines` (the baseline networks), :mod:`data` (what a classifier sees
of a patch set), :mod:`stage` (engine stage, training, prediction), :mod:`metrics`, :mod:`report`
(the cross-validation report). Patient splits: :mod:`neonet_core.splits`; cross-validation:
:mod:`neonet_core.workflows.cv`.
"""
