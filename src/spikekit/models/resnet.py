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
from spikekit.models._common import SpikingModel, check_norm_layer, make_neuron, make_norm, neuron_threshold
from spikekit.models._registry import register_model
from spikekit.neurons import Neuron

__all__ = ["BasicBlock", "SpikingResNet"]

NeuronFactory = Any


class _Norm:
    """The model's ``norm_layer`` choice, made once and applied to every conv."""

    def __init__(self, kind: str | None, num_steps: int, v_th: float) -> None:
        self.kind, self.num_steps, self.v_th = check_norm_layer(kind), num_steps, v_th

    def __call__(self, channels: int, *, residual: bool = False) -> nn.Module:
        # tdBN scales the two branches that meet at a residual addition by 1/sqrt(2) (Zheng et al.).
        alpha = 2**-0.5 if residual else 1.0
        norm = make_norm(self.kind, channels, num_steps=self.num_steps, alpha=alpha, v_th=self.v_th)
        return nn.Identity() if norm is None else norm


def _conv_bn(
    cin: int, cout: int, k: int, stride: int, norm: _Norm, residual: bool = False
) -> tuple[TimeDistributed, nn.Module]:
    # The conv keeps a bias only when no norm follows to absorb it (torchvision: bias=False + BN).
    bias = norm.kind is None
    conv = TimeDistributed(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias))
    return conv, norm(cout, residual=residual)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN-neuron layers with a shortcut; ``connect=None`` is the spiking-ResNet
    block (add before the last neuron), ``"ADD"``/``"AND"``/``"IAND"`` the SEW block."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        node: NeuronFactory,
        connect: str | None,
        norm: _Norm | None = None,
    ) -> None:
        super().__init__()
        norm = norm or _Norm("bn", 1, 1.0)
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride, norm)
        self.sn1 = node()
        # Spiking-ResNet adds the shortcut before the neuron: both branches meet there.
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3, 1, norm, residual=connect is None)
        self.sn2 = node()
        self.connect = None if connect is None else str(connect).upper()
        if self.connect is not None and self.connect not in CONNECT:
            raise ValueError(f"connect must be None or one of {', '.join(CONNECT)}, got {connect!r}")
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            parts: list[nn.Module] = list(_conv_bn(cin, cout, 1, stride, norm, residual=self.connect is None))
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
        norm_layer: the norm after every conv: ``"bn"`` (torchvision's; statistics over
            ``T * B``), ``"tdbn"`` (threshold-dependent BN, ``alpha = 1/sqrt(2)`` on the branches
            of a residual addition), ``"bntt"`` (one BN per step, ``T <= norm_steps``) or ``None``.
        norm_steps: number of per-step BNs with ``norm_layer="bntt"``.
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
        norm_layer: str | None = "bn",
        norm_steps: int = 16,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")

        def node() -> Neuron:
            return make_neuron(neuron, neuron_options)

        norm = _Norm(norm_layer, norm_steps, neuron_threshold(neuron_options))
        if stem == "imagenet":
            self.conv1, self.bn1 = _conv_bn(self.in_channels, width, 7, 2, norm)
            self.maxpool: nn.Module = MaxPool2d(3, 2, 1)
        else:
            self.conv1, self.bn1 = _conv_bn(self.in_channels, width, 3, 1, norm)
            self.maxpool = nn.Identity()
        self.sn1 = node()
        cin = width
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks = [
                BasicBlock(
                    cin if j == 0 else cout, cout, (1 if i == 0 else 2) if j == 0 else 1, node, connect, norm
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
        in_channels: int = 3,
        input_size: int | tuple[int, int] = 32,
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
        f"(``width``, ``stem``, ``norm_layer``, ``norm_steps``{', ``connect`` (default ADD)' if sew else ''}); "
        f"3 channels, 32 px by default."
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
