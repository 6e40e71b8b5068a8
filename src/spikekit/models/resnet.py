"""Spiking ResNet-18/34 (spikingjelly ``spiking_resnet``) and SEW-ResNet-18/34 (Fang et al. 2021).

Parameter names and counts follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``,
..., ``fc``; a time-folded layer holds its torch module as ``.module``).

* Spiking ResNet block: ``sn2(bn2(conv2(sn1(bn1(conv1(x))))) + downsample(x))`` — add, then fire.
* SEW block: ``g(sn2(bn2(conv2(sn1(bn1(conv1(x)))))), S)`` with ``S = x`` or
  ``sn(downsample(x))``, connecting spikes by ``g`` in ``ADD``/``AND``/``IAND``
  (:data:`spikekit.layers.CONNECT`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from spikekit.layers import CONNECT, AdaptiveAvgPool2d, Flatten, MaxPool2d, TimeDistributed
from spikekit.models._common import SpikingModel, make_neuron
from spikekit.models._registry import register_model
from spikekit.neurons import Neuron

__all__ = ["BasicBlock", "SpikingResNet"]

NeuronFactory = Any


def _conv_bn(cin: int, cout: int, k: int, stride: int) -> tuple[TimeDistributed, TimeDistributed]:
    conv = TimeDistributed(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False))
    return conv, TimeDistributed(nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN-neuron layers with a shortcut; ``connect=None`` is the spiking-ResNet
    block (add before the last neuron), ``"ADD"``/``"AND"``/``"IAND"`` the SEW block."""

    def __init__(self, cin: int, cout: int, stride: int, node: NeuronFactory, connect: str | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.sn1 = node()
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3, 1)
        self.sn2 = node()
        self.connect = None if connect is None else str(connect).upper()
        if self.connect is not None and self.connect not in CONNECT:
            raise ValueError(f"connect must be None or one of {', '.join(CONNECT)}, got {connect!r}")
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            parts: list[nn.Module] = list(_conv_bn(cin, cout, 1, stride))
            if self.connect is not None:
                parts.append(node())  # SEW: the shortcut carries spikes too
            self.downsample = nn.Sequential(*parts)

    def forward(self, xs: Tensor) -> Tensor:
        identity = xs if self.downsample is None else self.downsample(xs)
        out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(xs)))))
        if self.connect is None:
            return self.sn2(out + identity)
        return CONNECT[self.connect](self.sn2(out), identity)


class SpikingResNet(SpikingModel):
    """Spiking ResNet / SEW-ResNet with basic blocks.

    Args:
        layers: blocks per stage (``[2, 2, 2, 2]`` for 18, ``[3, 4, 6, 3]`` for 34).
        connect: ``None`` for spiking ResNet, or the SEW connect function.
        neuron, neuron_options: the neuron for every layer.
        width: channels of the first stage (64 in torchvision).
        stem: ``"imagenet"`` (7x7 stride-2 conv + 3x3 max-pool, as torchvision) or ``"cifar"``
            (3x3 stride-1 conv, no pool; for small inputs).
        **common: ``num_classes``, ``in_channels``, ``input_size``, ``batch_first``.

    Shape:
        ``[T, B, C, H, W]`` -> ``[T, B, num_classes]`` (the ``fc`` layer's per-step output).
    """

    def __init__(
        self,
        layers: Sequence[int],
        *,
        connect: str | None,
        neuron: str | type[Neuron],
        neuron_options: Mapping[str, Any] | None,
        width: int = 64,
        stem: str = "imagenet",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")

        def node() -> Neuron:
            return make_neuron(neuron, neuron_options)

        if stem == "imagenet":
            self.conv1, self.bn1 = _conv_bn(self.in_channels, width, 7, 2)
            self.maxpool: nn.Module = MaxPool2d(3, 2, 1)
        else:
            self.conv1, self.bn1 = _conv_bn(self.in_channels, width, 3, 1)
            self.maxpool = nn.Identity()
        self.sn1 = node()
        cin = width
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks = [
                BasicBlock(
                    cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1, node, connect
                )
                for j in range(n)
            ]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.num_stages = len(layers)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = nn.Linear(cin, self.num_classes)
        self._materialize()

    def forward_sequence(self, xs: Tensor) -> Tensor:
        z = self.maxpool(self.sn1(self.bn1(self.conv1(xs))))
        for i in range(self.num_stages):
            z = getattr(self, f"layer{i + 1}")(z)
        return self.fc(self.flatten(self.avgpool(z)))


_DEPTHS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


def _register(depth: int, sew: bool) -> None:
    name = f"{'sew' if sew else 'spiking'}_resnet{depth}"

    def build(
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        neuron: str | type[Neuron] = "lif",
        neuron_options: Mapping[str, Any] | None = None,
        batch_first: bool = False,
        **kwargs: Any,
    ) -> SpikingResNet:
        if sew:
            kwargs.setdefault("connect", "ADD")
        elif "connect" in kwargs:
            raise TypeError(f"{name} has no connect function; use sew_resnet{depth}")
        return SpikingResNet(
            _DEPTHS[depth],
            connect=kwargs.pop("connect", None),
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
        f"{'SEW-' if sew else 'Spiking '}ResNet-{depth}; keyword arguments as :class:`SpikingResNet` "
        f"(``width``, ``stem``{', ``connect`` (default ADD)' if sew else ''})."
    )
    register_model(
        name,
        reference=("SEW-ResNet (Fang et al. 2021)" if sew else "spikingjelly spiking_resnet") + f"{depth}",
    )(build)
    globals()[name] = build
    __all__.append(name)


for _depth in _DEPTHS:
    for _sew in (False, True):
        _register(_depth, _sew)
