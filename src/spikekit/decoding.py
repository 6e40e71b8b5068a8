"""Decoders: reduce a time-first output ``[T, B, *features]`` to per-sample scores ``[B, *features]``.

Spike decoders (count, rate, first-spike time) read the output spikes; membrane decoders (max,
last, mean) read a membrane trace, e.g. the output of an ``spk.LI`` readout. The ``decode*``
functions add the log-softmax over the class axis that norse's MNIST tutorial trains with
``nll_loss``. Every function accepts ``batch_first=True`` for ``[B, T, *features]`` input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spikekit.functional.sequence import time_first

__all__ = [
    "decode",
    "decode_last",
    "decode_mean",
    "first_spike_time",
    "last",
    "max_membrane",
    "mean_membrane",
    "rate",
    "spike_count",
]


def spike_count(zs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Number of spikes per neuron: ``sum_t z_t``.

    Args:
        zs: spikes ``[T, B, *features]``.
        batch_first: ``zs`` is ``[B, T, *features]``.

    Returns:
        ``[B, *features]``.

    Example:
        >>> import torch
        >>> spike_count(torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]]))
        tensor([[2., 1.]])
    """
    return time_first(zs, "spike_count", batch_first).sum(0)


def rate(zs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Firing rate per neuron (spikes per step): ``mean_t z_t``.

    Example:
        >>> import torch
        >>> rate(torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]]))
        tensor([[1.0000, 0.5000]])
    """
    return time_first(zs, "rate", batch_first).mean(0)


def max_membrane(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Maximum over time of a membrane trace: ``max_t v_t`` (gradient to the arg-max step).

    Example:
        >>> import torch
        >>> max_membrane(torch.tensor([[[0.2, -1.0]], [[0.1, 0.5]]]))
        tensor([[0.2000, 0.5000]])
    """
    return time_first(vs, "max_membrane", batch_first).max(0).values


def last(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Value at the last time step: ``v_{T-1}``.

    Example:
        >>> import torch
        >>> last(torch.tensor([[[0.2, -1.0]], [[0.1, 0.5]]]))
        tensor([[0.1000, 0.5000]])
    """
    return time_first(vs, "last", batch_first)[-1]


def mean_membrane(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """Mean over time of a membrane trace: ``mean_t v_t``.

    Example:
        >>> import torch
        >>> mean_membrane(torch.tensor([[[0.2, -1.0]], [[0.1, 0.5]]]))
        tensor([[ 0.1500, -0.2500]])
    """
    return time_first(vs, "mean_membrane", batch_first).mean(0)


class _FirstSpikeTime(torch.autograd.Function):
    """Index of the first non-zero step; backward is snntorch's sign estimator.

    The index is not differentiable; as in snntorch's ``SpikeTime.FirstSpike`` the gradient
    ``d t / d z`` is taken as -1 at the first-spike step (a spike there earlier -> smaller t)
    and 0 elsewhere. Silent neurons put their gradient at the last step.
    """

    @staticmethod
    def forward(ctx, zs: Tensor, no_spike: float) -> Tensor:  # type: ignore[override]
        T = zs.shape[0]
        fired = zs != 0
        steps = torch.arange(T, device=zs.device).view(T, *([1] * (zs.ndim - 1)))
        # earliest step with a spike; T marks "never" before substitution
        t = torch.where(fired, steps, T).amin(0)
        ctx.save_for_backward(t.clamp(max=T - 1))
        ctx.T = T
        out = t.to(zs.dtype)
        return torch.where(t == T, torch.as_tensor(no_spike, dtype=zs.dtype, device=zs.device), out)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        g = torch.zeros((ctx.T, *idx.shape), dtype=grad.dtype, device=grad.device)
        g.scatter_(0, idx.unsqueeze(0), -grad.unsqueeze(0))
        return g, None


def first_spike_time(zs: Tensor, *, no_spike: float | None = None, batch_first: bool = False) -> Tensor:
    """Time step of each neuron's first spike (any non-zero entry counts).

    Math:
        ``t = min { s : z_s != 0 }``, or ``no_spike`` if the neuron never fires. The gradient is
        snntorch's sign estimator: ``d t / d z_s = -1`` at ``s = t`` (the last step for silent
        neurons) and 0 elsewhere, so raising the spike at the first-spike step lowers the time.

    Args:
        zs: spikes ``[T, B, *features]``.
        no_spike: time reported for silent neurons; ``None`` gives ``T`` (just after the
            window). snntorch's temporal losses and ``accuracy_temporal`` use ``T - 1``.
        batch_first: ``zs`` is ``[B, T, *features]``.

    Returns:
        Float times ``[B, *features]``.

    Example:
        >>> import torch
        >>> zs = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).unsqueeze(1)
        >>> first_spike_time(zs)
        tensor([[1., 3., 0.]])
    """
    zs = time_first(zs, "first_spike_time", batch_first)
    fill = float(zs.shape[0]) if no_spike is None else float(no_spike)
    return _FirstSpikeTime.apply(zs, fill)


def decode(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """``log_softmax`` over classes of the maximum over time (norse tutorial ``decode``).

    Args:
        vs: readout membrane ``[T, B, C]`` (or spikes).
        batch_first: ``vs`` is ``[B, T, C]``.

    Returns:
        Log-probabilities ``[B, C]``, to train with ``nll_loss``.

    Example:
        >>> import torch
        >>> decode(torch.zeros(4, 2, 3)).exp()
        tensor([[0.3333, 0.3333, 0.3333],
                [0.3333, 0.3333, 0.3333]])
    """
    return F.log_softmax(max_membrane(vs, batch_first=batch_first), dim=-1)


def decode_last(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """``log_softmax`` over classes of the last time step (norse tutorial ``decode_last``)."""
    return F.log_softmax(last(vs, batch_first=batch_first), dim=-1)


def decode_mean(vs: Tensor, *, batch_first: bool = False) -> Tensor:
    """``log_softmax`` over classes of the mean over time (the average membrane norse suggests)."""
    return F.log_softmax(mean_membrane(vs, batch_first=batch_first), dim=-1)
