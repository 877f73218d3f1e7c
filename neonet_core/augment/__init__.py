"""The one training-time augmentation: its config (:class:`AugmentConfig`), one batched function
(:func:`augment_batch`) and the fixed orientations the rest of the library needs (:data:`FLIPS`,
:func:`flip_variant`, :func:`orient`).

Modules, one job each (import the public names from ``neonet_core.augment``): :mod:`.config` (the
options and the drawn parameters), :mod:`.pipeline` (drawing them, :func:`augment_batch`),
:mod:`.geometry` (exact and interpolated geometry), :mod:`.intensity` (bias field, gamma, gain,
offset, noise), :mod:`.orient` (the fixed flips and rotations used outside training).

Transforms, in the order they are applied to each item of a batch ``(B, C, D, H, W)``:

1. geometry, exact (no interpolation, every voxel value kept): a flip along each axis of
   ``flip_axes`` with probability ``flip_prob``; a random 90-degree rotation (``rot90``: ``"inplane"``
   = quarter turns in ``rot90_plane``, ``"all"`` = the 24 rotations of the cube; only the shape-keeping
   ones when sides differ); an integer shift of up to ``shift`` voxels per axis (``shift_mode``:
   ``"roll"`` wraps round, a bijection; ``"edge"`` repeats the border voxels). The same geometry is
   applied to every channel of an item and to every ``extras`` tensor (masks).
2. geometry, interpolated (opt-in): a small rotation of up to ``rotate_deg`` about each axis,
   trilinear on intensity channels, nearest on mask channels and extras. It blurs (issue 14 measured
   ~24 % of the high-frequency energy of real patches), so the lossless preset turns it off.
3. intensity, on the intensity channels only: a smooth multiplicative bias field (Legendre polynomial
   of degree ``bias_degree``, coefficients in +/- ``bias_field``), a gamma curve (``log gamma`` in
   +/- ``gamma``, on the item's min-max range as MONAI's RandAdjustContrast does), gain
   ``1 +/- gain`` and offset ``+/- offset``, Gaussian noise of a standard deviation drawn in
   ``[0, noise_std]``.

``AugmentConfig()`` is the classifier augmentation of before (flips, +/- 10 degrees trilinear, gain and
offset +/- 0.1): with ``where=real`` it draws the same random numbers as the old
``neocls.data.augment(x, real)`` and gives a bit-identical result (Testing/test_augment.py keeps
that function as a reference, and NeoGen's and NeoSeg's old flips and jitter too).
``AugmentConfig.lossless()`` is flips + quarter turns + integer shifts + intensity;
``AugmentConfig.flips()`` flips only (the classifier's and the autoencoder's default, see ClsConfig).

Randomness: every draw comes from ``generator`` or else the torch global RNG (which the engine seeds
each step), so the same seed gives the same output. A draw is made only for the transforms that are
on, in a fixed order: flips, quarter turns, shifts, rotation angles, gain, offset, bias field, gamma,
noise (so turning an intensity transform on or off keeps the geometry of a seed, and the legacy
configurations draw exactly what the code they replace drew).
Real and synthetic items are augmented alike; ``where`` can restrict the items (a legacy option).

Implementation: hand-written, batched torch, not a MONAI ``Compose`` run per item, because it is
faster in every measured case. ``bench/bench_augment.py`` (CPU, 1 thread, 2 shared cores, median of
30 batches of 8 x 1 x N^3; MONAI 1.6.1 array transforms per item, ``set_track_meta(False)``), ms per
batch, ours / MONAI (ratio), two runs:

- lossless (flips, quarter turns, edge shift <= 2, gain, offset), 32^3: 1.04 / 6.2 (0.17); 1.06 / 9.3 (0.11)
- lossless, 64^3: 5.8 / 25.7 (0.22); 6.5 / 23.8 (0.27)
- full (+ 10-degree trilinear rotation, bias field, gamma, noise), 32^3: 20.5 / 56.3 (0.36); 15.9 / 57.0 (0.28)
- full, 64^3: 203 / 314 (0.65); 234 / 286 (0.82) (trilinear ``grid_sample`` is most of it)

The lossless geometry folds each item's flips and quarter turns into one flip and a permuted view,
and its shift into one pad; per-item intensity factors act on a (B, voxels) view, in place.

MONAI's random transforms also draw from their own numpy ``RandomState`` (one per transform), not
from the torch RNG the engine seeds and checkpoints, and ``RandAffine`` resamples even for an identity
draw; MONAI has no integer shift (pad + random crop emulates the edge mode, nothing does the roll).
"""

from neonet_core.augment.config import ROT90_MODES, SHIFT_MODES, AugmentConfig, AugmentParams
from neonet_core.augment.geometry import apply_exact_geometry
from neonet_core.augment.intensity import bias_field
from neonet_core.augment.orient import FLIPS, flip_variant, orient
from neonet_core.augment.pipeline import augment_batch, sample_params

__all__ = ["AugmentConfig", "AugmentParams", "FLIPS", "ROT90_MODES", "SHIFT_MODES", "augment_batch", "apply_exact_geometry",
           "bias_field", "flip_variant", "orient", "sample_params"]
