"""Classification metrics on time-first outputs, and per-layer firing rates of a model.

All accuracies return a Python ``float`` in [0, 1]. Outputs are ``[T, B, C]`` (``batch_first``
accepted) and labels ``[B]``. Ties go to the lowest class index (``torch.max``), as in snntorch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from spikekit.decoding import first_spike_time, max_membrane, spike_count
from spikekit.encoding import check_labels
from spikekit.losses import population_sum

__all__ = [
    "accuracy",
    "accuracy_count",
    "accuracy_first_spike",
    "accuracy_membrane",
    "accuracy_rate",
    "firing_rates",
]


def accuracy(scores: Tensor, targets: Tensor, *, k: int = 1) -> float:
    """Top-``k`` accuracy of per-class scores (higher is better).

    Args:
        scores: ``[B, C]``.
        targets: labels ``[B]``.
        k: a sample counts as correct if its label is among the ``k`` highest scores.

    Returns:
        Fraction of correct samples.

    Example:
        >>> import torch
        >>> s = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]])
        >>> accuracy(s, torch.tensor([2, 2])), accuracy(s, torch.tensor([2, 2]), k=2)
        (0.0, 1.0)
    """
    if not isinstance(scores, Tensor) or scores.ndim != 2:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"accuracy: scores must have shape [B, C], got {got}")
    B, C = scores.shape
    y = check_labels(targets, C, "accuracy", B)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= C:
        raise ValueError(f"accuracy: k must be an int in [1, C] = [1, {C}], got {k!r}")
    if B == 0:
        raise ValueError("accuracy: empty batch (B = 0)")
    if k == 1:
        hit = scores.detach().max(-1).indices == y
    else:
        hit = (scores.detach().topk(k, dim=-1).indices == y.unsqueeze(-1)).any(-1)
    return float(hit.float().mean())


def _outputs(xs: Tensor, who: str, batch_first: bool) -> Tensor:
    layout = "[B, T, C]" if batch_first else "[T, B, C]"
    if not isinstance(xs, Tensor) or xs.ndim != 3:
        got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
        raise ValueError(f"{who}: outputs must have shape {layout}, got {got}")
    return xs.transpose(0, 1) if batch_first else xs


def accuracy_rate(
    zs: Tensor,
    targets: Tensor,
    population_code: bool = False,
    num_classes: int | None = None,
    *,
    k: int = 1,
    batch_first: bool = False,
) -> float:
    """Accuracy of the class with the most spikes (snntorch ``SF.accuracy_rate(spk_rec, targets)``).

    Args:
        zs: output spikes ``[T, B, N]``.
        targets: labels ``[B]``.
        population_code: sum the ``N`` outputs in ``num_classes`` consecutive groups first.
        num_classes: number of classes (with ``population_code``).
        k: top-``k``.
        batch_first: ``zs`` is ``[B, T, N]``.

    Example:
        >>> import torch
        >>> zs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
        >>> accuracy_rate(zs, torch.tensor([0, 1]))
        0.5
    """
    counts = spike_count(_outputs(zs, "accuracy_rate", batch_first))
    if population_code:
        counts = population_sum(counts, num_classes or 0, "accuracy_rate")
    return accuracy(counts, targets, k=k)


def accuracy_count(zs: Tensor, targets: Tensor, *, k: int = 1, batch_first: bool = False) -> float:
    """Accuracy from spike counts; identical to :func:`accuracy_rate` (count = T x rate, same arg-max)."""
    return accuracy_rate(zs, targets, k=k, batch_first=batch_first)


def accuracy_membrane(vs: Tensor, targets: Tensor, *, k: int = 1, batch_first: bool = False) -> float:
    """Accuracy of the class with the highest membrane over time (``argmax_c max_t v_t``),
    the prediction of norse's ``decode`` and snntorch's ``ce_max_membrane_loss``.

    Example:
        >>> import torch
        >>> vs = torch.tensor([[[0.9, 0.1]], [[0.0, 0.5]]])
        >>> accuracy_membrane(vs, torch.tensor([0]))
        1.0
    """
    return accuracy(max_membrane(_outputs(vs, "accuracy_membrane", batch_first)), targets, k=k)


def accuracy_first_spike(zs: Tensor, targets: Tensor, *, k: int = 1, batch_first: bool = False) -> float:
    """Accuracy of the class that spikes first (snntorch ``SF.accuracy_temporal``).

    Silent neurons count as firing at the last step ``T - 1``, as in snntorch; ties go to the
    lowest class index.

    Example:
        >>> import torch
        >>> zs = torch.zeros(4, 1, 3)
        >>> zs[2, 0, 0] = zs[1, 0, 2] = 1
        >>> accuracy_first_spike(zs, torch.tensor([2]))
        1.0
    """
    zs = _outputs(zs, "accuracy_first_spike", batch_first)
    return accuracy(-first_spike_time(zs.detach(), no_spike=zs.shape[0] - 1), targets, k=k)


@torch.no_grad()
def firing_rates(model: nn.Module, *inputs: Any, **kwargs: Any) -> dict[str, float]:
    """Mean firing rate (spikes per neuron per step) of every neuron layer of ``model`` on ``inputs``.

    Runs ``model(*inputs, **kwargs)`` once without gradients under an
    :class:`~spikekit.regularisers.ActivityRecorder`.

    Returns:
        ``{layer name (as spk.neurons_of): rate}``.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF())
        >>> list(firing_rates(net, torch.rand(4, 5, 2)))
        ['1']
    """
    from spikekit.regularisers import ActivityRecorder

    with ActivityRecorder(model, detach=True) as rec:
        model(*inputs, **kwargs)
    return rec.firing_rates()
