"""Synaptic operations, MACs and an energy estimate of one forward pass (``spikekit.energy``).

(The module is not called ``energy``: importing a submodule of that name would replace the
function ``spikekit.energy`` with the module.)

The counts follow the convention of sinabs (``SNNAnalyzer``'s ``synops``) and spikingjelly
(``op_counter.SynOpCounter``): a weight layer whose input is binary spikes does one
accumulate (AC) per *(input spike, outgoing connection)* pair, so its synaptic operations are
``sum over nonzero inputs of their fan-out``; a weight layer fed analog values (the first layer
on pixels, a layer after a graded readout) does one multiply-accumulate (MAC) per connection,
dense. Energy is ``synops * E_AC + MACs * E_MAC`` with per-operation costs from a preset.

What is counted: every ``nn.Linear`` and convolution (``nn.Conv1d/2d/3d`` and the transposed
ones) the forward pass calls, however deeply wrapped (``TimeDistributed``, ``Recurrent``'s
recurrent weights), once per call. What is not: neuron state updates, batch norm (assumed folded
into the weights, as both peers do), pooling, residual additions, memory traffic. This is a
compute-only estimate for comparing models, not a measurement of a chip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["EnergyPreset", "LayerEnergy", "EnergyReport", "PRESETS", "energy"]


@dataclass(frozen=True)
class EnergyPreset:
    """Energy per operation of one technology.

    Attributes:
        name: preset name.
        e_ac_pj: energy of one accumulate (one synaptic operation), in picojoules.
        e_mac_pj: energy of one multiply-accumulate, in picojoules.
        source: where the numbers come from.
    """

    name: str
    e_ac_pj: float
    e_mac_pj: float
    source: str


_HOROWITZ = (
    "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, "
    "pp. 10-14, doi:10.1109/ISSCC.2014.6757323 (45 nm, 0.9 V)"
)

#: Per-operation costs. ``"45nm"`` is the figure most SNN papers quote (Horowitz 2014: 32-bit
#: float add 0.9 pJ, multiply 3.7 pJ, so a MAC is 4.6 pJ); the fp16 and int8 rows are from the
#: same table (fp16 add 0.4 / mult 1.1 pJ; int8 add 0.03 / mult 0.2 pJ). spikingjelly's
#: ``SimpleEnergyCostConfig`` uses the same three rows.
PRESETS: dict[str, EnergyPreset] = {
    "45nm": EnergyPreset("45nm", 0.9, 4.6, _HOROWITZ + ", fp32"),
    "45nm-fp16": EnergyPreset("45nm-fp16", 0.4, 1.5, _HOROWITZ + ", fp16"),
    "45nm-int8": EnergyPreset("45nm-int8", 0.03, 0.23, _HOROWITZ + ", int8"),
}


@dataclass(frozen=True)
class LayerEnergy:
    """Counts of one weight layer over the whole forward pass (all time steps, whole batch).

    Attributes:
        name: qualified module name.
        kind: module class name (``"Linear"``, ``"Conv2d"``, ...).
        spiking_input: every input the layer saw was binary (0/1), so it does accumulates.
        synops: synaptic operations (accumulates): nonzero inputs × their fan-out.
        macs: multiply-accumulates (layers fed analog values; dense).
        connections: dense connection count (the MACs an ANN of the same shape would do).
        input_density: fraction of nonzero input elements.
        energy_pj: ``synops * E_AC + macs * E_MAC`` in picojoules.
    """

    name: str
    kind: str
    spiking_input: bool
    synops: float
    macs: float
    connections: float
    input_density: float
    energy_pj: float


@dataclass(frozen=True)
class EnergyReport:
    """What :func:`energy` returns: per-layer counts, totals and the preset used.

    Totals are over the whole input (``samples`` samples); the ``per_sample`` values divide by
    ``samples``. ``str(report)`` is a table.

    Attributes:
        layers: one :class:`LayerEnergy` per weight layer, in call order.
        preset: the per-operation costs.
        samples: batch size of the input.
    """

    layers: tuple[LayerEnergy, ...]
    preset: EnergyPreset
    samples: int

    @property
    def synops(self) -> float:
        """Total synaptic operations (accumulates)."""
        return sum(layer.synops for layer in self.layers)

    @property
    def macs(self) -> float:
        """Total multiply-accumulates."""
        return sum(layer.macs for layer in self.layers)

    @property
    def energy_pj(self) -> float:
        """Total estimated energy in picojoules."""
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def ann_energy_pj(self) -> float:
        """Energy of an ANN of the same shape doing every connection as a MAC (for comparison)."""
        return sum(layer.connections for layer in self.layers) * self.preset.e_mac_pj

    @property
    def energy_per_sample_pj(self) -> float:
        """Estimated energy of one sample in picojoules."""
        return self.energy_pj / max(self.samples, 1)

    def lines(self) -> list[str]:
        """One line per layer plus a total line, per sample (for a run summary)."""
        n = max(self.samples, 1)
        out = []
        for layer in self.layers:
            op = (
                f"{layer.synops / n:,.0f} synops (input density {layer.input_density:.3f})"
                if layer.spiking_input
                else f"{layer.macs / n:,.0f} MACs (analog input)"
            )
            out.append(f"energy {layer.name} ({layer.kind}): {op}, {layer.energy_pj / n / 1e3:,.3f} nJ")
        out.append(
            f"energy total per sample: {self.synops / n:,.0f} synops + {self.macs / n:,.0f} MACs = "
            f"{self.energy_per_sample_pj / 1e3:,.3f} nJ at {self.preset.name} "
            f"(AC {self.preset.e_ac_pj} pJ, MAC {self.preset.e_mac_pj} pJ; same-shape ANN "
            f"{self.ann_energy_pj / n / 1e3:,.3f} nJ)"
        )
        return out

    def __str__(self) -> str:
        n = max(self.samples, 1)
        head = f"{'layer':<24} {'kind':<12} {'input':<7} {'synops':>14} {'MACs':>14} {'energy (nJ)':>12}"
        rows = [f"per sample ({self.samples} samples), preset {self.preset.name}", head, "-" * len(head)]
        for layer in self.layers:
            rows.append(
                f"{layer.name:<24} {layer.kind:<12} {'spikes' if layer.spiking_input else 'analog':<7} "
                f"{layer.synops / n:>14,.0f} {layer.macs / n:>14,.0f} {layer.energy_pj / n / 1e3:>12,.3f}"
            )
        rows.append("-" * len(head))
        rows.append(
            f"{'total':<24} {'':<12} {'':<7} {self.synops / n:>14,.0f} {self.macs / n:>14,.0f} "
            f"{self.energy_per_sample_pj / 1e3:>12,.3f}"
        )
        rows.append(
            f"same-shape ANN (all MACs): {self.ann_energy_pj / n / 1e3:,.3f} nJ; source: {self.preset.source}"
        )
        return "\n".join(rows)


_WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


class _Counts:
    def __init__(self) -> None:
        self.synops = 0.0
        self.macs = 0.0
        self.connections = 0.0
        self.nonzero = 0.0
        self.elements = 0.0
        self.binary = True
        self.kind = ""


def _connections(module: nn.Module, x: Tensor) -> float:
    """``sum(layer_with_unit_weights_and_no_bias(x))``: for a 0/1 ``x`` this counts each
    (nonzero input, connection) pair exactly once, borders, stride, groups and padding mode
    included, because the layer is linear in its input."""
    from torch.func import functional_call

    # Each output is an integer at most the fan-in, exact in float32 (the fast kernels) below
    # 2**24; the sum over all outputs is taken in float64 (exact to 2**53; MPS has no float64).
    fan_in = module.weight[0].numel()
    dtype = torch.float32 if fan_in < 2**24 or x.device.type == "mps" else torch.float64
    params = {"weight": torch.ones_like(module.weight, dtype=dtype)}
    if getattr(module, "bias", None) is not None:
        params["bias"] = torch.zeros_like(module.bias, dtype=dtype)
    out = functional_call(module, params, (x.to(dtype),))
    return float(out.sum(dtype=torch.float32 if x.device.type == "mps" else torch.float64))


def _dense_connections(module: nn.Module, x: Tensor, cache: dict[Any, float]) -> float:
    """Connections of ``module`` for an input of ``x``'s shape: one sample's count times the samples.

    Dim 0 is a batch dim for ``Linear`` (any leading dims) and for a batched convolution, so
    one slice along it has the same count as any other; cached per module and slice shape.
    """
    batched = isinstance(module, nn.Linear) or x.dim() == len(getattr(module, "kernel_size", ())) + 2
    if not batched or x.dim() < 2:
        return _connections(module, torch.ones_like(x))
    key = (id(module), tuple(x.shape[1:]))
    if key not in cache:
        cache[key] = _connections(module, torch.ones_like(x[:1]))
    return cache[key] * x.shape[0]


@contextlib.contextmanager
def _hooks(model: nn.Module, counts: dict[str, _Counts]) -> Iterator[None]:
    busy = [False]  # the counting calls below go through the module again: do not count them
    dense_cache: dict[Any, float] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def fn(module: nn.Module, args: tuple[Any, ...], _out: Any) -> None:
            if busy[0] or not args or not isinstance(args[0], Tensor):
                return
            x = args[0].detach()
            c = counts.setdefault(name, _Counts())
            c.kind = type(module).__name__
            binary = bool(((x == 0) | (x == 1)).all())
            busy[0] = True
            try:
                dense = _dense_connections(module, x, dense_cache)
                if binary:
                    c.synops += _connections(module, x)
                else:
                    c.macs += dense
            finally:
                busy[0] = False
            c.connections += dense
            c.nonzero += float((x != 0).sum())
            c.elements += x.numel()
            c.binary &= binary

        return fn

    handles = [
        m.register_forward_hook(hook(n or type(m).__name__))
        for n, m in model.named_modules()
        if isinstance(m, _WEIGHT_LAYERS)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def energy(
    model: nn.Module, xs: Tensor, *, preset: str | EnergyPreset = "45nm", batch_dim: int = 1
) -> EnergyReport:
    """Count synaptic operations and MACs of one forward pass and estimate its energy.

    The model runs once in eval mode (restored afterwards) with forward hooks on its weight
    layers. A layer counts as spike-driven only if *every* input it saw was exactly 0 or 1;
    then each nonzero input costs one accumulate per outgoing connection (exact at borders,
    with stride, groups and padding). Otherwise every connection is one MAC. Energy uses the
    chosen preset's per-operation costs; the default ``"45nm"`` is 0.9 pJ per accumulate and
    4.6 pJ per multiply-accumulate (32-bit float, 45 nm; M. Horowitz, "Computing's energy
    problem (and what we can do about it)", ISSCC 2014), the figures sinabs and spikingjelly
    users quote. See :data:`PRESETS` for the others.

    Args:
        model: the network.
        xs: its input (time-first ``[T, B, ...]`` for spikekit models).
        preset: a key of :data:`PRESETS` or an :class:`EnergyPreset`.
        batch_dim: the batch dimension of ``xs`` (``samples`` in the report; 0 for batch-first).

    Returns:
        An :class:`EnergyReport` (totals over the input; ``str(report)`` prints a per-sample table).

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF(), torch.nn.Linear(3, 4))
        >>> xs = torch.full((5, 1, 2), 0.7)
        >>> rep = spk.energy(net, xs)
        >>> rep.layers[0].macs, rep.layers[0].spiking_input  # analog input: 5 steps x 2 x 3 MACs
        (30.0, False)
        >>> rep.layers[1].synops == 4 * float(net[1](net[0](xs)).detach().sum())  # each spike reaches 4
        True
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown energy preset {preset!r}; expected one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    counts: dict[str, _Counts] = {}
    was = model.training
    model.eval()
    try:
        with _hooks(model, counts):
            model(xs)
    finally:
        model.train(was)
    layers = []
    for name, c in counts.items():
        # A layer that saw analog input in any call is charged MACs for those calls only.
        layers.append(
            LayerEnergy(
                name=name,
                kind=c.kind,
                spiking_input=c.binary,
                synops=c.synops,
                macs=c.macs,
                connections=c.connections,
                input_density=c.nonzero / max(c.elements, 1.0),
                energy_pj=c.synops * preset.e_ac_pj + c.macs * preset.e_mac_pj,
            )
        )
    return EnergyReport(layers=tuple(layers), preset=preset, samples=int(xs.shape[batch_dim]))
