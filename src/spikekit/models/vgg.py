"""Spiking VGG-11/13/16/19, with and without batch norm, for any number of time steps.

Same layers and parameter names as torchvision's VGG (``features``, ``avgpool``,
``classifier``; a stateless layer ``features.i`` holds its torch module as
``features.i.module``), with every ReLU replaced by a neuron and dropout by
:class:`~spikekit.layers.SequenceDropout`. Stateless layers fold time into the batch, so
the network runs for any ``T`` (snetx's spiking VGG only runs for ``T = 1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from spikekit.layers import AdaptiveAvgPool2d, Flatten, MaxPool2d, SequenceDropout, TimeDistributed
from spikekit.models._common import SpikingModel, check_norm_layer, make_neuron, make_norm, neuron_threshold
from spikekit.models._registry import register_model
from spikekit.neurons import Neuron

__all__ = ["SpikingVGG", "VGG_CONFIGS"]

# torchvision's layer lists: channel counts, "M" = 2x2 max-pool.
VGG_CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


class SpikingVGG(SpikingModel):
    """Spiking VGG.

    Args:
        config: layer list (channels or ``"M"``), e.g. ``VGG_CONFIGS[11]``.
        norm_layer: the norm after every conv: ``"bn"`` (BN over ``T * B`` samples),
            ``"tdbn"`` (threshold-dependent BN), ``"bntt"`` (one BN per step, ``T <= norm_steps``)
            or ``None`` (no norm; torchvision's plain VGG).
        norm_steps: number of per-step BNs with ``norm_layer="bntt"``.
        neuron, neuron_options: the neuron for every hidden layer.
        width: channels of the first stage (64 in torchvision); all stages scale with it.
        hidden: width of the two hidden classifier layers (4096 in torchvision).
        pool_size: side of the adaptive average pool before the classifier (7 in torchvision).
        dropout: classifier dropout, one mask per sequence.
        **common: ``num_classes``, ``in_channels``, ``input_size``, ``batch_first``.

    Shape:
        ``[T, B, C, H, W]`` -> ``[T, B, num_classes]`` (the last linear layer's per-step output).
    """

    def __init__(
        self,
        config: Sequence[int | str],
        *,
        norm_layer: str | None,
        neuron: str | type[Neuron],
        neuron_options: Mapping[str, Any] | None,
        norm_steps: int = 16,
        width: int = 64,
        hidden: int = 4096,
        pool_size: int = 7,
        dropout: float = 0.5,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if width <= 0 or hidden <= 0 or pool_size <= 0:
            raise ValueError(f"width, hidden and pool_size must be > 0, got {width}, {hidden}, {pool_size}")
        pools = sum(1 for c in config if c == "M")
        if min(self.input_hw) < 2**pools:
            raise ValueError(f"SpikingVGG: input_size {self.input_hw} is too small for {pools} 2x2 max-pools")
        norm_layer = check_norm_layer(norm_layer)
        v_th = neuron_threshold(neuron_options)
        layers: list[nn.Module] = []
        cin = self.in_channels
        for c in config:
            if c == "M":
                layers.append(MaxPool2d(2, 2))
                continue
            cout = int(c) * width // 64
            layers.append(TimeDistributed(nn.Conv2d(cin, cout, 3, padding=1)))
            norm = make_norm(norm_layer, cout, num_steps=norm_steps, v_th=v_th)
            if norm is not None:
                layers.append(norm)
            layers.append(make_neuron(neuron, neuron_options))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = AdaptiveAvgPool2d((pool_size, pool_size))
        self.flatten = Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(cin * pool_size * pool_size, hidden),
            make_neuron(neuron, neuron_options),
            SequenceDropout(dropout),
            nn.Linear(hidden, hidden),
            make_neuron(neuron, neuron_options),
            SequenceDropout(dropout),
            nn.Linear(hidden, self.num_classes),
        )
        self._materialize()

    def forward_sequence(self, xs: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(xs))))


def _register(depth: int, batch_norm: bool) -> None:
    name = f"spiking_vgg{depth}{'_bn' if batch_norm else ''}"

    def build(
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 32,
        neuron: str | type[Neuron] = "lif",
        neuron_options: Mapping[str, Any] | None = None,
        batch_first: bool = False,
        norm_layer: str | None = "bn" if batch_norm else None,
        **kwargs: Any,
    ) -> SpikingVGG:
        return SpikingVGG(
            VGG_CONFIGS[depth],
            norm_layer=norm_layer,
            neuron=neuron,
            neuron_options=neuron_options,
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
            batch_first=batch_first,
            **kwargs,
        )

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"Spiking VGG-{depth}{' with batch norm' if batch_norm else ''} for CIFAR-sized input by "
        f"default (3 channels, 32 px); keyword arguments as :class:`SpikingVGG` (``norm_layer`` "
        f"(default {'bn' if batch_norm else 'None'}), ``norm_steps``, ``width``, ``hidden``, "
        f"``pool_size``, ``dropout``)."
    )
    register_model(name, reference=f"torchvision/spikingjelly vgg{depth}{'_bn' if batch_norm else ''}")(build)
    globals()[name] = build
    __all__.append(name)


for _depth in VGG_CONFIGS:
    for _bn in (False, True):
        _register(_depth, _bn)
