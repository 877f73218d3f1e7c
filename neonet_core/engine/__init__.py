"""The one training engine every stage uses (NeoSeg, autoencoder, LDM, ControlNet, classifiers).

Stages differ only in model, loss and data: a :class:`Stage` says which networks it owns, which
optimisers it needs and how one batch turns into losses; :class:`Trainer` does the rest in one
loop you can read top to bottom: device, bf16 autocast on CUDA, deterministic per-step seeding,
gradient clipping, learning-rate warm-up and cosine decay, weight EMA, validation, the choice of
published weights (best validation score or final), atomic checkpoints and ``--resume``, progress
bar / JSON lines, and DistributedDataParallel under ``torchrun``.

Modules, one job each (import the public names from ``neonet_core.engine``):

- :mod:`.trainer`: :class:`Stage`, :class:`Trainer` (the loop, checkpoints, DDP), :class:`TrainResult`;
- :mod:`.train_config`: :class:`TrainConfig` and the learning-rate schedule :func:`lr_factor`;
- :mod:`.batches`: the batch order of an epoch, per-step seeds, collation (:func:`epoch_batches`,
  :func:`steps_for`, :func:`collate`);
- :mod:`.ema`: the weight EMA;
- :mod:`.run_files`: the files of a run folder (weights, history).

Determinism: before step ``s`` the global torch RNG is seeded from ``(seed, s)`` and the batch
order of every epoch is a permutation drawn from ``(seed, epoch)``. The learning rate of step ``s``
is a pure function of ``s`` and the run's planned length (:func:`lr_factor`), and the EMA weights
travel in the checkpoint. A run resumed from a checkpoint therefore sees exactly the batches,
random numbers, learning rates and averages of an uninterrupted run (bit for bit on one device).

Weight EMA (``ema_decay > 0``): every trainable network has an exponential moving average of its
parameters and buffers (BatchNorm statistics included), updated after every optimiser step. The
EMA weights are the ones validated and the ones written to every ``*.safetensors`` file; the raw
(live) weights are kept only in ``checkpoint.pt``.

Run folder layout (``out_dir``):

- ``best.safetensors``: **the published weights, the file stages load** (also
  ``TrainResult.weights``). With ``select="best"`` (default) the weights of the best validation
  score; with ``select="final"`` the weights at the end of the run (validation still runs and is
  logged). When the stage has no validation data it is the final weights either way. EMA weights
  when ``ema_decay > 0``. Keys ``<network>.<param>``, read with :func:`load_weights`.
- ``last.safetensors``: the weights at the end of the run (EMA weights when EMA is on).
- ``checkpoint.pt``: latest full state (raw weights, EMA, optimisers; weights-only loadable).
- ``history.jsonl``: one JSON line per logged step / validation; read it with :func:`read_history`
  (a line torn by a kill is skipped, and dropped on ``--resume``).
- ``train_config.json``.
"""

from neonet_core.engine.batches import collate, epoch_batches, iterate, step_seed, steps_for, to_device
from neonet_core.engine.run_files import load_weights, read_history
from neonet_core.engine.train_config import LR_SCHEDULES, SELECT_MODES, TrainConfig, lr_factor
from neonet_core.engine.trainer import Stage, Trainer, TrainResult

__all__ = [
    "LR_SCHEDULES",
    "SELECT_MODES",
    "TrainConfig",
    "Stage",
    "Trainer",
    "TrainResult",
    "load_weights",
    "read_history",
    "lr_factor",
    "steps_for",
    "epoch_batches",
    "step_seed",
    "collate",
    "iterate",
    "to_device",
]
