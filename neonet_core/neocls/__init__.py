"""NeoCls: PattenNet (frozen NeoGen encoder + 3D dual attention), baselines, training, cross-validation.

Modules: :mod:`dab` (dual attention block), :mod:`pattennet` (PattenNet, Grad-CAM), :mod:`baselines`
(DenseNet121, resnet18, the model factory), :mod:`data` (patches, augmentation), :mod:`stage`
(engine stage, training, prediction), :mod:`folds`, :mod:`metrics`, :mod:`cv`, :mod:`report`.
"""
