"""The reference tutorials' networks (eve-mli, norse, snntorch, spikingjelly), by name.

Each keeps its tutorial's layer sizes and neuron constants; the neuron *kind* is the common
``neuron=`` argument (defaults are translated, e.g. snntorch's ``Leaky`` is a LIF with
``decay_input=False`` and a delayed soft reset). Per-step outputs: ``[T, B, num_classes]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikekit import surrogate as _sg
from spikekit.layers import Flatten, LILinear, MaxPool2d, Recurrent, TimeDistributed
from spikekit.models._common import SequentialModel, SpikingModel, as_hw, make_neuron
from spikekit.models._registry import register_model
from spikekit.neurons import LI, Neuron, get_neuron

__all__ = [
    "NorseConvNet",
    "eve_mnist",
    "norse_convnet",
    "norse_snn",
    "snntorch_convnet",
    "snntorch_fc",
    "spikingjelly_fc",
]

NeuronSpec = str | type[Neuron]

# snntorch's Leaky: mem = beta mem + x, subtract-reset applied at the next step; the reset
# term is detached (snntorch's mem_reset: ``spike_grad(mem - thr).clone().detach()``), so no
# gradient flows through it (without this the gradients differ from snntorch's by ~15 %).
_SNNTORCH = {
    "beta": 0.9,
    "decay_input": False,
    "reset": "soft",
    "reset_delay": True,
    "detach_reset": True,
    "surrogate": _sg.FastSigmoid(),
}
# norse LIFParameters(alpha=100, v_th=0.5) at dt=1 ms: tau_mem = 10 steps, tau_syn = 5 steps.
_NORSE = {"tau": 10.0, "tau_syn": 5.0, "surrogate": _sg.FastSigmoid(alpha=1.0)}


def _conv_out(size: int, k: int, s: int = 1, p: int = 0) -> int:
    return (size + 2 * p - k) // s + 1


def _check_size(name: str, hw: tuple[int, int], ok: bool, need: str) -> None:
    if not ok:
        raise ValueError(f"{name}: input_size {hw} is too small; {need}")


@register_model("eve_mnist", reference="eve-mli SNN tutorial: 3 x (conv s2 + BN + node), 2 linear")
def eve_mnist(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
    neuron_wise: bool = True,
) -> SequentialModel:
    """eve-mli's MNIST net: conv(4)-conv(8)-conv(16), each 3x3 stride 2 + BN + neuron, then
    ``linear(16) -> neuron -> linear(num_classes)`` (the last linear's output is the per-step logit).

    Args:
        neuron_wise: per-neuron thresholds etc., sized lazily from the layer before
            (eve's ``State(conv)``; ``shape="infer"``).
        others: see :func:`~spikekit.models.create_model`.

    Example:
        >>> import torch
        >>> eve_mnist()(torch.rand(2, 3, 1, 28, 28)).shape
        torch.Size([2, 3, 10])
    """
    h, w = as_hw(input_size)
    for _ in range(3):
        h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    defaults = {"surrogate": _sg.Sigmoid()}
    fixed = {"shape": "infer"} if neuron_wise else {}

    def node() -> Neuron:
        return make_neuron(neuron, neuron_options, defaults, **fixed)

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [TimeDistributed(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout)), node()]

    body = nn.Sequential(
        *block(in_channels, 4),
        *block(4, 8),
        *block(8, 16),
        Flatten(),
        nn.Linear(16 * h * w, 16),
        node(),
        nn.Linear(16, num_classes),
    )
    return SequentialModel(
        body, num_classes=num_classes, in_channels=in_channels, input_size=input_size, batch_first=batch_first
    )


class _NorseSNN(SpikingModel):
    """norse's recurrent SNN: flatten -> recurrent neuron layer -> linear -> LI readout."""

    def __init__(
        self, hidden: int, neuron: NeuronSpec, neuron_options: Mapping[str, Any] | None, **common: Any
    ) -> None:
        super().__init__(flat_input=True, **common)
        self.flatten = Flatten()
        self.fc_in = nn.Linear(self.in_features, hidden, bias=False)  # LIFRecurrentCell's input weights
        self.rec = Recurrent(
            make_neuron(neuron, neuron_options, {**_NORSE, "v_th": 0.5}),
            nn.Linear(hidden, hidden, bias=False),
        )
        self.fc_out = nn.Linear(hidden, self.num_classes, bias=False)
        self.out = LI(tau=10.0, tau_syn=5.0)

    def forward_sequence(self, xs: Tensor) -> Tensor:
        return self.out(self.fc_out(self.rec(self.fc_in(self.flatten(xs)))))


@register_model("norse_snn", input_kind="features", reference="norse MNIST tutorial: recurrent LIF(100) + LI")
def norse_snn(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
    hidden: int = 100,
) -> _NorseSNN:
    """norse's recurrent SNN: ``C*H*W -> recurrent neuron(hidden) -> linear -> LI`` (membrane out).

    norse's ``LIFRecurrentCell`` is current-based: ``neuron="cubalif"`` reproduces it; the
    default ``"lif"`` drops the synaptic current.

    Args:
        hidden: recurrent layer width (norse: 100).
        others: see :func:`~spikekit.models.create_model`.

    Example:
        >>> import torch
        >>> norse_snn()(torch.rand(5, 2, 784)).shape
        torch.Size([5, 2, 10])
    """
    return _NorseSNN(
        hidden,
        neuron,
        neuron_options,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        batch_first=batch_first,
    )


class NorseConvNet(SpikingModel):
    """norse's ConvNet: ``conv5(20) -> neuron -> pool -> 10 * conv5(50) -> neuron -> pool ->
    linear(500) -> neuron -> ReLU -> LILinear``. The factor 10 is norse's input gain for conv2.

    norse's ReLU on the spikes passes no gradient where the last hidden layer is silent (ReLU's
    derivative at 0 is 0), so most of the surrogate gradient never reaches the convolutions;
    ``relu=False`` leaves it out (not the tutorial's network, but it trains much better).
    """

    def __init__(
        self, neuron: NeuronSpec, neuron_options: Mapping[str, Any] | None, relu: bool = True, **common: Any
    ) -> None:
        super().__init__(**common)
        self.relu = bool(relu)
        h, w = self.input_hw
        fh, fw = (_conv_out(h, 5) // 2 - 4) // 2, (_conv_out(w, 5) // 2 - 4) // 2
        _check_size("norse_convnet", self.input_hw, fh > 0 and fw > 0, "it needs at least 16x16")
        self.conv1 = TimeDistributed(nn.Conv2d(self.in_channels, 20, 5))
        self.lif0 = make_neuron(neuron, neuron_options, _NORSE)
        self.pool = MaxPool2d(2)
        self.conv2 = TimeDistributed(nn.Conv2d(20, 50, 5))
        self.lif1 = make_neuron(neuron, neuron_options, _NORSE)
        self.flatten = Flatten()
        self.fc1 = nn.Linear(fh * fw * 50, 500)
        self.lif2 = make_neuron(neuron, neuron_options, _NORSE)
        # norse's LILinearCell draws N(0, 1 / in_features), right after fc1 (same seed, same weights)
        w = torch.randn(self.num_classes, 500) / 500**0.5
        self.out = LILinear(500, self.num_classes, bias=False, tau=10.0, tau_syn=5.0)
        with torch.no_grad():
            self.out.linear.weight.copy_(w)

    def forward_sequence(self, xs: Tensor) -> Tensor:
        z = self.pool(self.lif0(self.conv1(xs)))
        z = self.pool(self.lif1(10 * self.conv2(z)))
        z = self.lif2(self.fc1(self.flatten(z)))
        return self.out(F.relu(z) if self.relu else z)


@register_model("norse_convnet", reference="norse MNIST tutorial: ConvNet (2 conv + linear + LILinear)")
def norse_convnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
    relu: bool = True,
) -> NorseConvNet:
    """norse's 2-conv ConvNet (see :class:`NorseConvNet`); ``neuron="cubalif"`` matches norse's LIF.

    ``relu=False`` drops the tutorial's ReLU before the readout, which blocks the surrogate
    gradient wherever the last hidden layer is silent.

    Example:
        >>> import torch
        >>> norse_convnet()(torch.rand(2, 1, 1, 28, 28)).shape
        torch.Size([2, 1, 10])
    """
    return NorseConvNet(
        neuron,
        neuron_options,
        relu=relu,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        batch_first=batch_first,
    )


@register_model(
    "snntorch_convnet", reference="snntorch quickstart: conv5(8)-pool-conv5(16)-pool-linear, Leaky"
)
def snntorch_convnet(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
) -> SequentialModel:
    """snntorch's quickstart conv net; the output layer is a neuron, so outputs are spikes.

    ``conv5(8) -> maxpool2 -> neuron -> conv5(16) -> maxpool2 -> neuron -> linear -> neuron``
    with snntorch ``Leaky(beta=0.9)`` dynamics by default.

    Example:
        >>> import torch
        >>> snntorch_convnet()(torch.rand(3, 2, 1, 28, 28)).shape
        torch.Size([3, 2, 10])
    """
    h, w = as_hw(input_size)
    fh, fw = (_conv_out(h, 5) // 2 - 4) // 2, (_conv_out(w, 5) // 2 - 4) // 2
    _check_size("snntorch_convnet", (h, w), fh > 0 and fw > 0, "it needs at least 16x16")

    def node() -> Neuron:
        return make_neuron(neuron, neuron_options, _SNNTORCH)

    body = nn.Sequential(
        TimeDistributed(nn.Conv2d(in_channels, 8, 5), nn.MaxPool2d(2)),
        node(),
        TimeDistributed(nn.Conv2d(8, 16, 5), nn.MaxPool2d(2)),
        node(),
        Flatten(),
        nn.Linear(16 * fh * fw, num_classes),
        node(),
    )
    return SequentialModel(
        body, num_classes=num_classes, in_channels=in_channels, input_size=input_size, batch_first=batch_first
    )


@register_model(
    "snntorch_fc", input_kind="features", reference="snntorch quickstart: 784-300-10, learnt beta"
)
def snntorch_fc(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
    hidden: int = 300,
) -> SequentialModel:
    """snntorch's ``C*H*W -> 300 -> num_classes`` net with learnable decays: one shared beta for
    the hidden layer (init 0.9) and one beta per output neuron (init uniform in (0, 1)).

    The neuron must have a decay (``lif``, ``cubalif``, ``alif``); outputs are spikes.

    Example:
        >>> import torch
        >>> net = snntorch_fc()
        >>> net(torch.rand(3, 2, 1, 28, 28)).shape
        torch.Size([3, 2, 10])
        >>> net.body[2].beta_logit.shape, net.body[4].beta_logit.shape
        (torch.Size([]), torch.Size([10]))
    """
    cls = get_neuron(neuron)
    if "beta" not in cls.learnable_names():
        raise ValueError(
            f"snntorch_fc learns a decay beta; {cls.__name__} has none (use lif, cubalif or alif)"
        )
    # snntorch draws the per-neuron betas from U[0, 1); keep them inside (0, 1) for the logit.
    beta2 = torch.rand(num_classes).clamp(0.01, 0.99)
    user = dict(neuron_options or {})
    user.pop("beta", None)
    user.pop("tau", None)
    h, w = as_hw(input_size)
    body = nn.Sequential(
        Flatten(),
        nn.Linear(in_channels * h * w, hidden),
        make_neuron(neuron, {**user, "learn": "beta"}, _SNNTORCH),
        nn.Linear(hidden, num_classes),
        make_neuron(neuron, {**user, "learn": "beta", "beta": beta2}, _SNNTORCH),
    )
    return SequentialModel(
        body,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        batch_first=batch_first,
        flat_input=True,
    )


@register_model("spikingjelly_fc", input_kind="features", reference="spikingjelly LIF FC MNIST: linear + LIF")
def spikingjelly_fc(
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int | tuple[int, int] = 28,
    neuron: NeuronSpec = "lif",
    neuron_options: Mapping[str, Any] | None = None,
    batch_first: bool = False,
) -> SequentialModel:
    """spikingjelly's single-layer net: ``flatten -> linear (no bias) -> LIF(tau=2)``; spikes out.

    Example:
        >>> import torch
        >>> spikingjelly_fc()(torch.rand(4, 2, 784)).shape
        torch.Size([4, 2, 10])
    """
    h, w = as_hw(input_size)
    body = nn.Sequential(
        Flatten(),
        nn.Linear(in_channels * h * w, num_classes, bias=False),
        make_neuron(neuron, neuron_options, {"tau": 2.0, "surrogate": _sg.Sigmoid(alpha=4.0)}),
    )
    return SequentialModel(
        body,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        batch_first=batch_first,
        flat_input=True,
    )
