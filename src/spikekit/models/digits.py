"""A small convolutional SNN sized for scikit-learn's 8x8 digits (the embedded default data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from spikekit.layers import Flatten, MaxPool2d, TimeDistributed
from spikekit.models._common import SequentialModel, as_hw, make_neuron
from spikekit.models._registry import register_model
from spikekit.neurons import LI, Neuron

__all__ = ["digits_convnet"]


@register_model("digits_convnet", reference="spikekit: 2 conv+BN+LIF blocks, max-pool, linear + LI")
def digits_convnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 8,
    neuron: str | type[Neuron] = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
    channels: tuple[int, int] = (32, 64),
    dropout: float = 0.2,
) -> SequentialModel:
    """Conv SNN for 8x8 digits with direct encoding (the analog image enters every step).

    ``conv3x3-BN-neuron -> conv3x3-BN-neuron -> maxpool2 -> dropout -> linear -> LI``; the LI
    readout's membrane is the per-step logit (decode with a mean over time). Reaches about
    98.5-99 % test accuracy on the digits split with ``T=4`` after a few CPU minutes.

    Args:
        num_classes, in_channels, input_size, neuron, neuron_options, batch_first: see
            :func:`~spikekit.models.create_model`.
        channels: widths of the two conv blocks.
        dropout: dropout before the readout (``nn.Dropout`` per element).

    Returns:
        A model mapping ``[T, B, C, H, W]`` to ``[T, B, num_classes]``.

    Example:
        >>> import torch
        >>> net = digits_convnet()
        >>> net(torch.rand(4, 3, 1, 8, 8)).shape
        torch.Size([4, 3, 10])
    """
    c1, c2 = channels
    h, w = as_hw(input_size)
    model_kw = dict(num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    opts = {"tau": 2.0, "detach_reset": True}
    body = nn.Sequential(
        TimeDistributed(nn.Conv2d(in_channels, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)),
        make_neuron(neuron, neuron_options, opts),
        TimeDistributed(nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)),
        make_neuron(neuron, neuron_options, opts),
        MaxPool2d(2),
        Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c2 * (h // 2) * (w // 2), num_classes),
        LI(tau=2.0, tau_syn=None),
    )
    return SequentialModel(body, batch_first=batch_first, **model_kw)
