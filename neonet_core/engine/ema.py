"""Weight EMA: an average of every trainable network, and a context that swaps it in for validation."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


def ema_decay_at(decay: float, n_averaged: int) -> float:
    """The decay used for the update after ``n_averaged`` earlier updates: ``decay``, warmed up as
    ``min(decay, (1 + n) / (10 + n))`` so that a short run is not dominated by its initial weights
    (with 0.99 and a fixed decay, 36 steps would leave 70 % of the average on the first weights)."""
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged))


def build_emas(trainable: dict[str, nn.Module], decay: float) -> dict[str, nn.Module]:
    """An EMA (``AveragedModel``, parameters and buffers) of every network in ``trainable`` with
    gradients, with the warm-up of :func:`ema_decay_at`; none when ``decay`` is 0."""
    if not decay:
        return {}
    from torch.optim.swa_utils import AveragedModel

    def update(averaged, current, n_averaged):
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            weight = 1.0 - ema_decay_at(decay, int(n_averaged))
            for a, c in zip(averaged, current):
                a.lerp_(c.to(a.dtype), weight)
        else:  # integer buffers (BatchNorm's num_batches_tracked) follow the live network
            for a, c in zip(averaged, current):
                a.copy_(c)

    emas = {}
    for name, net in trainable.items():
        if any(p.requires_grad for p in net.parameters()):
            emas[name] = AveragedModel(net, multi_avg_fn=update, use_buffers=True)
            emas[name].module.requires_grad_(False)
    return emas


@contextmanager
def ema_weights(live: dict[str, nn.Module], emas: dict[str, nn.Module]):
    """Inside, the ``live`` networks that have an EMA hold its weights; afterwards their own, bit for bit."""
    saved = {n: {k: v.detach().clone() for k, v in live[n].state_dict().items()} for n in emas}
    for name, ema in emas.items():
        live[name].load_state_dict(ema.module.state_dict())
    try:
        yield
    finally:
        for name, state in saved.items():
            live[name].load_state_dict(state)
