"""NIR (Neuromorphic Intermediate Representation) export and import.

:func:`to_nir` walks a model and asks each module's *class* for its mapping: a neuron or layer
class owns ``to_nir(dt, shape)`` (a leaf: one NIR node) or ``nir_wiring()`` (a composite: its
children and the edges between them, e.g. :class:`~spikekit.layers.Recurrent`'s cycle). Raw
``torch.nn`` layers cannot own methods, so they are looked up in the small tables below, keyed
by their exact type. :func:`from_nir` builds a :class:`NIRGraphModule` whose nodes come from the
classes that declare the NIR node type in ``nir_nodes`` (``from_nir(node, dt, **options)``).

Discretisation is explicit: NIR neurons are continuous-time ODEs; spikekit's are forward Euler
with ``beta = 1 - dt / tau``. The conventions (the same as spikingjelly's, and snntorch's for
the membrane) are: ``tau = dt / (1 - beta)``; ``r = 1`` for ``decay_input=True`` and
``r = tau / dt`` for ``decay_input=False``; ``r = 1 / dt`` for ``IF``; ``w_in = tau_syn / dt``
(the input jumps the synaptic current by ``x``). Options NIR has no field for (a soft or no
reset, ``reset_delay``, the surrogate, ``detach_reset``) go into the node's
``metadata["spikekit"]`` together with the class and ``dt``, and :func:`from_nir` honours them;
``to_nir(..., portable=True)`` refuses them instead, for tools that ignore the metadata.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikekit import surrogate as _sg
from spikekit.layers._mode import StepAware
from spikekit.layers.time_distributed import Flatten
from spikekit.modes import stepwise
from spikekit.neurons import Neuron, get_neuron, list_neurons

__all__ = ["to_nir", "from_nir", "NIRGraphModule", "Scale", "Threshold"]

_META = "spikekit"
_FORMAT = "spikekit-nir/1"


def _nir() -> Any:
    try:
        import nir
    except ImportError as e:  # pragma: no cover - the extra is part of the test environment
        raise ImportError("NIR exchange needs the nir package: pip install 'spikekit[nir]'") from e
    return nir


def _f64(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def _ints(v: Any) -> tuple[int, ...] | int | str:
    """A NIR stride/padding/kernel value (int, array, tuple or 'same') as torch wants it."""
    if isinstance(v, (str, bytes)):
        return v.decode() if isinstance(v, bytes) else v
    a = np.asarray(v)
    return int(a) if a.ndim == 0 else tuple(int(x) for x in a.reshape(-1))


# ---------------------------------------------------------------------------- small layers
class Scale(nn.Module):
    """Multiply the input by a fixed per-feature factor (NIR ``Scale``).

    Args:
        scale: the factor ``[*features]`` (or a scalar).

    Shape:
        ``[*, *features]`` -> same (works per step and on sequences).

    Example:
        >>> Scale(torch.tensor([2.0, 3.0]))(torch.ones(1, 2)).tolist()
        [[2.0, 3.0]]
    """

    nir_nodes = ("Scale",)

    def __init__(self, scale: Tensor | float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.get_default_dtype()).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale.to(x.dtype)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """A ``nir.Scale`` node with the factor broadcast to ``shape``."""
        return _nir().Scale(scale=np.broadcast_to(_f64(self.scale), shape).copy())

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> Scale:
        """The module for a ``nir.Scale`` node."""
        return cls(torch.from_numpy(np.asarray(node.scale, dtype=np.float64)))


class Threshold(nn.Module):
    """A stateless spike ``z = H(x - threshold)`` (NIR ``Threshold``), with a surrogate gradient.

    Args:
        threshold: the threshold ``[*features]`` (or a scalar).
        surrogate: a :class:`~spikekit.surrogate.Surrogate` or its name (the backward pass).

    Shape:
        ``[*, *features]`` -> same.

    Example:
        >>> Threshold(1.0)(torch.tensor([[0.5, 1.5]])).tolist()
        [[0.0, 1.0]]
    """

    nir_nodes = ("Threshold",)

    def __init__(self, threshold: Tensor | float, surrogate: str | _sg.Surrogate = "atan") -> None:
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold, dtype=torch.get_default_dtype()).clone())
        self.surrogate = _sg.get(surrogate)

    def forward(self, x: Tensor) -> Tensor:
        return _sg.spike(x - self.threshold.to(x.dtype), self.surrogate)

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        """A ``nir.Threshold`` node with the threshold broadcast to ``shape``."""
        return _nir().Threshold(threshold=np.broadcast_to(_f64(self.threshold), shape).copy())

    @classmethod
    def from_nir(cls, node: Any, dt: float, **options: Any) -> Threshold:
        """The module for a ``nir.Threshold`` node."""
        return cls(torch.from_numpy(np.asarray(node.threshold, dtype=np.float64)))


class _InputGain(nn.Module):
    """A neuron whose NIR node scales its input beyond spikekit's conventions (``r``, ``w_in``).

    The neurons are linear in their input from a zero current, so ``r / r_conv`` and
    ``w_in / w_in_conv`` are one factor on the input. The node's own values are kept so the
    module exports back to the same node.
    """

    def __init__(self, neuron: Neuron, gain: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.neuron = neuron
        self.register_buffer("gain", torch.from_numpy(np.asarray(gain, dtype=np.float64)))
        self.fields = {k: np.asarray(v, dtype=np.float64).copy() for k, v in fields.items()}

    @property
    def nir_neuron(self) -> Neuron:
        return self.neuron

    def forward(self, x: Tensor) -> Tensor:
        return self.neuron(x * self.gain.to(x.dtype))

    def to_nir(self, dt: float, shape: tuple[int, ...]) -> Any:
        node = self.neuron.to_nir(dt, shape)
        for k, v in self.fields.items():
            setattr(node, k, np.broadcast_to(v, shape).copy())
        return node


# ---------------------------------------------------------------------------- torch tables
def _linear_to_nir(m: nn.Linear, dt: float, shape: tuple[int, ...]) -> Any:
    nir = _nir()
    if m.bias is None:
        return nir.Linear(weight=_f64(m.weight))
    return nir.Affine(weight=_f64(m.weight), bias=_f64(m.bias))


def _conv_to_nir(m: nn.Conv1d | nn.Conv2d, dt: float, shape: tuple[int, ...]) -> Any:
    nir = _nir()
    if m.padding_mode != "zeros":
        raise NotImplementedError(
            f"{type(m).__name__}(padding_mode={m.padding_mode!r}) has no NIR mapping: NIR convolutions pad with zeros"
        )
    bias = _f64(m.bias) if m.bias is not None else np.zeros(m.out_channels)
    one_d = isinstance(m.kernel_size, tuple) and len(m.kernel_size) == 1
    pad = m.padding if isinstance(m.padding, str) else (m.padding[0] if one_d else tuple(m.padding))
    if one_d:
        return nir.Conv1d(
            input_shape=int(shape[-1]),
            weight=_f64(m.weight),
            stride=m.stride[0],
            padding=pad,
            dilation=m.dilation[0],
            groups=m.groups,
            bias=bias,
        )
    return nir.Conv2d(
        input_shape=tuple(int(s) for s in shape[-2:]),
        weight=_f64(m.weight),
        stride=tuple(m.stride),
        padding=pad,
        dilation=tuple(m.dilation),
        groups=m.groups,
        bias=bias,
    )


def _pair(v: Any) -> np.ndarray:
    return np.array([v, v] if isinstance(v, int) else list(v))


def _avgpool_to_nir(m: nn.AvgPool2d, dt: float, shape: tuple[int, ...]) -> Any:
    if (
        m.ceil_mode
        or m.divisor_override is not None
        or (np.any(_pair(m.padding)) and not m.count_include_pad)
    ):
        raise NotImplementedError(
            "AvgPool2d with ceil_mode, divisor_override or count_include_pad=False has no NIR mapping"
        )
    stride = m.kernel_size if m.stride is None else m.stride
    return _nir().AvgPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding))


def _sumpool_to_nir(m: nn.LPPool2d, dt: float, shape: tuple[int, ...]) -> Any:
    if float(m.norm_type) != 1.0 or m.ceil_mode:
        raise NotImplementedError(
            f"LPPool2d(norm_type={m.norm_type}, ceil_mode={m.ceil_mode}) has no NIR mapping; "
            f"only norm_type=1 (sum pooling, nir.SumPool2d) does"
        )
    stride = m.kernel_size if m.stride is None else m.stride
    return _nir().SumPool2d(kernel_size=_pair(m.kernel_size), stride=_pair(stride), padding=np.zeros(2, int))


def _flatten_to_nir(m: nn.Flatten, dt: float, shape: tuple[int, ...]) -> Any:
    if m.start_dim == 0:
        raise NotImplementedError("nn.Flatten(start_dim=0) merges the batch; NIR nodes see one sample")
    end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
    return _nir().Flatten(input_type={"input": np.array(shape)}, start_dim=m.start_dim - 1, end_dim=end)


# Raw torch layers (they cannot own methods): exact type -> (module, dt, sample shape) -> NIR node.
_TORCH_TO_NIR: dict[type, Callable[[Any, float, tuple[int, ...]], Any]] = {
    nn.Linear: _linear_to_nir,
    nn.Conv1d: _conv_to_nir,
    nn.Conv2d: _conv_to_nir,
    nn.AvgPool2d: _avgpool_to_nir,
    nn.LPPool2d: _sumpool_to_nir,
    nn.Flatten: _flatten_to_nir,
}

# Raw torch containers: exact type -> (children, edges), like a class's ``nir_wiring``.
_TORCH_WIRING: dict[type, Callable[[Any], tuple[dict[str, nn.Module], list[tuple[str, str]]]]] = {
    nn.Sequential: lambda m: (
        dict(m.named_children()),
        list(zip(["input", *dict(m.named_children())], [*dict(m.named_children()), "output"], strict=True)),
    ),
    nn.Identity: lambda m: ({}, [("input", "output")]),
}


def _as_torch(a: Any, dtype: torch.dtype) -> Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy()).to(dtype)


def _linear_from_nir(node: Any, dt: float, **_: Any) -> nn.Linear:
    w = np.asarray(node.weight)
    bias = getattr(node, "bias", None)
    m = nn.Linear(w.shape[-1], w.shape[-2], bias=bias is not None)
    with torch.no_grad():
        m.weight.copy_(_as_torch(w, m.weight.dtype))
        if bias is not None:
            m.bias.copy_(_as_torch(bias, m.bias.dtype))
    return m


def _conv_from_nir(node: Any, dt: float, **_: Any) -> nn.Module:
    w = np.asarray(node.weight)
    cls = nn.Conv1d if w.ndim == 3 else nn.Conv2d
    groups = int(np.asarray(node.groups))
    m = cls(
        w.shape[1] * groups,
        w.shape[0],
        w.shape[2:] if w.ndim == 4 else w.shape[2],
        stride=_ints(node.stride),
        padding=_ints(node.padding),
        dilation=_ints(node.dilation),
        groups=groups,
        bias=True,
    )
    with torch.no_grad():
        m.weight.copy_(_as_torch(w, m.weight.dtype))
        m.bias.copy_(_as_torch(node.bias, m.bias.dtype))
    return m


def _avgpool_from_nir(node: Any, dt: float, **_: Any) -> nn.AvgPool2d:
    return nn.AvgPool2d(_ints(node.kernel_size), _ints(node.stride), _ints(node.padding))


def _sumpool_from_nir(node: Any, dt: float, **_: Any) -> nn.LPPool2d:
    if np.any(np.asarray(node.padding)):
        raise NotImplementedError(f"nir.SumPool2d with padding {node.padding} is not supported (only 0)")
    return nn.LPPool2d(1, _ints(node.kernel_size), _ints(node.stride))


_NIR_TO_TORCH: dict[str, Callable[..., nn.Module]] = {
    "Affine": _linear_from_nir,
    "Linear": _linear_from_nir,
    "Conv1d": _conv_from_nir,
    "Conv2d": _conv_from_nir,
    "AvgPool2d": _avgpool_from_nir,
    "SumPool2d": _sumpool_from_nir,
}


def _import_table() -> dict[str, Callable[..., nn.Module]]:
    """NIR node type -> builder, from every class that declares ``nir_nodes`` (plus torch's)."""
    table: dict[str, Callable[..., nn.Module]] = dict(_NIR_TO_TORCH)
    owner: dict[str, str] = {k: "torch.nn" for k in table}
    classes: list[type] = [get_neuron(n) for n in list_neurons()] + [Flatten, Scale, Threshold]
    for cls in classes:
        for kind in getattr(cls, "nir_nodes", ()):
            if kind in table and owner[kind] != cls.__name__:
                raise RuntimeError(
                    f"NIR node type {kind!r} is claimed by both {owner[kind]} and {cls.__name__}"
                )
            table[kind], owner[kind] = cls.from_nir, cls.__name__
    return table


# ---------------------------------------------------------------------------- export
def _plain(v: Any) -> Any:
    if isinstance(v, _sg.Surrogate):
        return {"name": type(v).__name__, **{f.name: getattr(v, f.name) for f in dataclasses.fields(v)}}
    return v


def _neuron_metadata(neuron: Neuron, path: str, node: Any, dt: float, portable: bool) -> dict[str, Any]:
    """The node metadata of a neuron; refuses what cannot run as the NIR node says."""
    who = f"to_nir: {path!r} ({type(neuron).__name__})"
    o = neuron.options
    if neuron.ann:
        raise ValueError(
            f"{who} is in ANN mode (spikekit.non_spike); NIR has no node for it; call spikekit.spike first"
        )
    if not o.binary or not o.spiking:
        raise ValueError(
            f"{who} has binary={o.binary}, spiking={o.spiking}: a graded or relaxed output has no NIR node"
        )
    used = type(neuron).options_used
    options = {f: _plain(getattr(o, f)) for f in used if f in {x.name for x in dataclasses.fields(o)}}
    if o.surrogate is not None:
        extra = []
        if "reset" in used and o.reset != "hard":
            extra.append(f"reset={o.reset!r}")
        if "reset_delay" in used and o.reset_delay:
            extra.append("reset_delay=True")
        if extra and portable:
            raise ValueError(
                f"{who} has {', '.join(extra)}, which nir.{type(node).__name__} cannot express (it resets to "
                f"v_reset in the step that spikes); build it with reset='hard', reset_delay=False, or "
                f"export with portable=False to carry them in the node metadata (read by spikekit.from_nir)"
            )
    return {"class": type(neuron).__name__, "dt": float(dt), "options": options}


class _Exporter:
    def __init__(self, dt: float, shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]], portable: bool):
        self.dt = dt
        self.shapes = shapes
        self.portable = portable
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []

    def edge(self, a: str, b: str) -> None:
        if (a, b) not in self.edges:
            self.edges.append((a, b))

    def emit(
        self, m: nn.Module, name: str, sources: list[str], in_shape: tuple[int, ...]
    ) -> tuple[list[str], list[str], tuple[int, ...]]:
        """Add ``m`` fed by ``sources``; returns its entry nodes, exit nodes and output shape."""
        cls = type(m)
        rec = self.shapes.get(id(m))
        if rec is not None:
            in_shape = rec[0]
        out_shape = rec[1] if rec is not None else in_shape
        wiring = _TORCH_WIRING.get(cls)
        if wiring is not None or hasattr(cls, "nir_wiring"):
            children, edges = wiring(m) if wiring is not None else m.nir_wiring()
            entries, exits, shape = self.emit_wiring(children, edges, name, sources, in_shape)
            return entries, exits, out_shape if rec is not None else shape
        fn = _TORCH_TO_NIR.get(cls)
        method = getattr(cls, "to_nir", None)
        refusal = getattr(cls, "nir_refusal", None)
        if refusal is not None:
            raise NotImplementedError(
                f"to_nir: module {name!r}: {cls.__name__} has no NIR mapping: {refusal}"
            )
        if fn is None and method is None:
            raise NotImplementedError(
                f"to_nir: module {name!r} ({cls.__name__}) has no NIR mapping. Mapped: neurons "
                f"{', '.join(n for n in list_neurons() if callable(getattr(get_neuron(n), 'from_nir', None)))}; "
                f"layers {', '.join(t.__name__ for t in _TORCH_TO_NIR)}, Flatten, Scale, Threshold; "
                f"containers Sequential, TimeDistributed, Recurrent, Residual(ADD), LILinear"
            )
        try:
            node = fn(m, self.dt, in_shape) if fn is not None else m.to_nir(self.dt, in_shape)
        except NotImplementedError as e:
            raise NotImplementedError(f"to_nir: module {name!r}: {e}") from None
        neuron = m if isinstance(m, Neuron) else getattr(m, "nir_neuron", None)
        if neuron is not None:
            node.metadata = {_META: _neuron_metadata(neuron, name, node, self.dt, self.portable)}
        if name in self.nodes or name in ("input", "output"):
            raise ValueError(f"to_nir: two nodes would be named {name!r}; rename the module")
        self.nodes[name] = node
        for s in sources:
            self.edge(s, name)
        return [name], [name], out_shape

    def emit_wiring(
        self,
        children: dict[str, nn.Module],
        edges: list[tuple[str, str]],
        prefix: str,
        sources: list[str],
        in_shape: tuple[int, ...],
    ) -> tuple[list[str], list[str], tuple[int, ...]]:
        single = len(children) == 1 and bool(prefix)
        entries_of: dict[str, list[str]] = {}
        exits_of: dict[str, list[str]] = {}
        shape_of: dict[str, tuple[int, ...]] = {"input": in_shape}
        pending: list[tuple[str, str]] = []
        for k, child in children.items():
            srcs: list[str] = []
            child_in = in_shape
            for u, v in edges:
                if v != k:
                    continue
                if u == "input":
                    srcs += sources
                elif u in exits_of:
                    srcs += exits_of[u]
                    child_in = shape_of[u]
                else:
                    pending.append((u, k))
            name = prefix if single else (f"{prefix}.{k}" if prefix else k)
            entries_of[k], exits_of[k], shape_of[k] = self.emit(child, name, srcs, child_in)
        for u, k in pending:
            for a in exits_of[u]:
                for b in entries_of[k]:
                    self.edge(a, b)
        exits: list[str] = []
        out_shape = in_shape
        for u, v in edges:
            if v == "output":
                exits += sources if u == "input" else exits_of[u]
                out_shape = shape_of[u]
        entries = [b for u, v in edges if u == "input" and v != "output" for b in entries_of[v]]
        return entries, exits, out_shape


def _record_shapes(model: nn.Module, x: Tensor) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per module (by id): the per-sample input and output shapes of one step on ``x`` ``[B, *f]``."""
    shapes: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if id(m) not in shapes and args and isinstance(args[0], Tensor) and isinstance(out, Tensor):
            shapes[id(m)] = (tuple(args[0].shape[1:]), tuple(out.shape[1:]))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad(), stepwise(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _model_dt(model: nn.Module) -> float:
    dts = {
        float(m.dt)
        for m in model.modules()
        if isinstance(m, Neuron) and any(p.tau for p in m.parameters_decl)
    }
    if len(dts) > 1:
        raise ValueError(
            f"to_nir: the model's neurons were built with different dt {sorted(dts)}; a NIR graph has "
            f"one time step: pass dt= explicitly"
        )
    return dts.pop() if dts else 1.0


def to_nir(
    model: nn.Module,
    sample_or_shape: Tensor | tuple[int, ...] | list[int] | torch.Size,
    dt: float | None = None,
    *,
    portable: bool = False,
) -> Any:
    """Export ``model`` as a NIR graph.

    Each module's class supplies its mapping (neurons: ``nir.IF``, ``nir.LIF``,
    ``nir.CubaLIF``, ``nir.LI`` / ``nir.CubaLI`` / ``nir.I``; ``nn.Linear`` -> ``nir.Affine``
    or ``nir.Linear``; ``nn.Conv1d/2d``; ``Flatten``; ``nn.AvgPool2d``; ``nn.LPPool2d(1)``
    -> ``nir.SumPool2d``; :class:`Scale`; :class:`Threshold`); containers (``nn.Sequential``,
    :class:`~spikekit.layers.TimeDistributed` and its pooling subclasses,
    :class:`~spikekit.layers.Recurrent` as a cycle, :class:`~spikekit.layers.Residual` with
    ``ADD``, :class:`~spikekit.layers.LILinear`) are wired from their children. Node names are
    the module paths (``"0"``, ``"2.neuron"``).

    Args:
        model: the model; it is run once, one step inside :func:`spikekit.stepwise`, to learn
            every layer's shape.
        sample_or_shape: a sample sequence ``[T, B, *features]`` (its first step is used) or the
            per-sample feature shape ``(*features)``.
        dt: the time step: NIR time constants are ``tau = dt / (1 - beta)``. ``None`` takes the
            ``dt`` the model's neurons were built with (they must agree; 1.0 without any).
        portable: refuse the options a NIR node cannot express (soft or no reset,
            ``reset_delay``) instead of carrying them in the node metadata, which only
            :func:`from_nir` reads.

    Returns:
        A ``nir.NIRGraph`` with nodes ``"input"`` and ``"output"``; its metadata holds ``dt``,
        and every neuron node's metadata its class, options and ``dt``.

    Raises:
        NotImplementedError: a module with no NIR mapping (named by its path and class).
        ValueError: an option NIR cannot express (graded output, ANN mode; with ``portable``, a
            non-hard or delayed reset), or neurons built with different ``dt``.

    Shape:
        The graph's input type is ``(*features)``; NIR nodes see one sample of one time step.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), spk.LIF(tau=4.0))
        >>> g = spk.to_nir(net, (4,), dt=1.0)
        >>> sorted(g.nodes), g.edges
        (['0', '1', 'input', 'output'], [('input', '0'), ('0', '1'), ('1', 'output')])
    """
    nir = _nir()
    if isinstance(sample_or_shape, Tensor):
        if sample_or_shape.ndim < 3:
            raise ValueError(
                f"to_nir: a sample must be a sequence [T, B, *features], got shape {tuple(sample_or_shape.shape)}; "
                f"or give the feature shape as a tuple"
            )
        x = sample_or_shape[0]
    else:
        feats = tuple(int(s) for s in sample_or_shape)
        ref = next((t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()), None)
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        device = ref.device if ref is not None else None
        x = torch.zeros((1, *feats), dtype=dtype, device=device)
    dt = _model_dt(model) if dt is None else float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"to_nir: dt must be a finite number > 0, got {dt!r}")
    shapes = _record_shapes(model, x)
    ex = _Exporter(dt, shapes, portable)
    feats = tuple(x.shape[1:])
    wiring = _TORCH_WIRING.get(type(model)) is not None or hasattr(type(model), "nir_wiring")
    root = "" if wiring else type(model).__name__.lower()
    _, exits, out_shape = ex.emit(model, root, ["input"], feats)
    nodes = {"input": nir.Input(input_type={"input": np.array(feats)}), **ex.nodes}
    nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    edges = ex.edges + [(e, "output") for e in exits]
    meta = {_META: {"format": _FORMAT, "dt": dt, "layout": "one sample of one time step"}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=True)


# ---------------------------------------------------------------------------- import
class NIRGraphModule(StepAware):
    """A NIR graph run one time step at a time: what :func:`from_nir` returns.

    Every node is a spikekit module (neurons, :class:`~spikekit.layers.Flatten`,
    :class:`Scale`, :class:`Threshold`) or a ``torch.nn`` layer. At each step the nodes run in
    the order of a depth-first walk from the input; a node's input is the sum of its incoming
    edges, each from the current step if its source already ran, else from the previous step
    (zero at the first): a cycle (recurrence) is delayed by one step, as
    :class:`~spikekit.layers.Recurrent`.

    Args:
        nodes: node name -> module (``None`` for the graph's input and output nodes).
        edges: directed ``(source, target)`` node names.
        input: the input node's name. output: the output node's name.
        dt: the time step the graph was read for.

    Shape:
        ``[T, B, *input_type]`` -> ``[T, B, *output_type]``; inside :func:`spikekit.stepwise`
        one step ``[B, *input_type]`` -> ``[B, *output_type]`` with the state carried.

    Example:
        >>> import torch, spikekit as spk
        >>> g = spk.to_nir(torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF()), (2,))
        >>> spk.from_nir(g)(torch.rand(5, 4, 2)).shape
        torch.Size([5, 4, 3])
    """

    def __init__(
        self,
        nodes: dict[str, nn.Module | None],
        edges: list[tuple[str, str]],
        input: str,
        output: str,
        dt: float,
    ) -> None:
        super().__init__()
        succ: dict[str, list[str]] = {n: [] for n in nodes}
        for a, b in edges:
            succ[a].append(b)
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str) -> None:  # reverse post-order: every non-cycle edge points forward
            seen.add(n)
            for s in succ[n]:
                if s not in seen:
                    visit(s)
            order.append(n)

        visit(input)
        order.reverse()
        missing = sorted(set(nodes) - seen)
        if missing:
            raise ValueError(f"from_nir: nodes {missing} are not reachable from the input node {input!r}")
        self.names = [n for n in order if n != input]
        self.input, self.output, self.dt = input, output, float(dt)
        self.edges = list(edges)
        self.nodes = nn.ModuleList([nodes[n] or nn.Identity() for n in self.names])
        self._incoming = {n: [a for a, b in edges if b == n] for n in self.names}

    def node(self, name: str) -> nn.Module:
        """The module of node ``name``."""
        return self.nodes[self.names.index(name)]

    def _step(self, x: Tensor) -> Tensor:
        assert self._stream is not None
        prev: dict[str, Tensor] = self._stream.state or {}
        out: dict[str, Tensor] = {self.input: x}
        for name, module in zip(self.names, self.nodes, strict=True):
            total: Tensor | None = None
            for src in self._incoming[name]:
                val = out[src] if src in out else prev.get(src)
                if val is not None:
                    total = val if total is None else total + val
            if total is None:
                raise RuntimeError(f"NIRGraphModule: node {name!r} has no input at the first step")
            out[name] = total if name == self.output else module(total)
        self._stream.state = out
        return out[self.output]

    def forward(self, xs: Tensor) -> Tensor:
        """Outputs ``[T, B, *features]`` from a fresh state (one step inside ``stepwise``)."""
        if self._stream is not None:
            return self._step(xs)
        if not isinstance(xs, Tensor) or xs.ndim < 2:
            got = tuple(xs.shape) if isinstance(xs, Tensor) else type(xs).__name__
            raise ValueError(f"NIRGraphModule: expected [T, B, *features], got {got}")
        with stepwise(self):
            return torch.stack([self._step(x) for x in xs.unbind(0)])

    def nir_wiring(self) -> tuple[dict[str, nn.Module], list[tuple[str, str]]]:
        """NIR wiring: the graph's own nodes and edges (so export gives back the graph read).

        Returns:
            ``(children, edges)`` with the input and output nodes renamed ``"input"``/``"output"``.
        """
        ends = {self.input: "input", self.output: "output"}
        children = {n: m for n, m in zip(self.names, self.nodes, strict=True) if n != self.output}
        return children, [(ends.get(a, a), ends.get(b, b)) for a, b in self.edges]

    def extra_repr(self) -> str:
        return f"dt={self.dt}, edges={self.edges}"


def _inline(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges with sub-graphs inlined (their input/output nodes kept as pass-throughs)."""
    nir = _nir()
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    ends: dict[str, tuple[str, str]] = {}
    for k, node in graph.nodes.items():
        name = prefix + k
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _inline(node, name + ".")
            ins = [prefix + k + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [prefix + k + "." + n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise NotImplementedError(f"from_nir: sub-graph {name!r} needs one Input and one Output node")
            nodes.update(sub_nodes)
            edges += sub_edges
            ends[name] = (ins[0], outs[0])
        else:
            nodes[name] = node
    for a, b in graph.edges:
        a, b = prefix + a, prefix + b
        edges.append((ends[a][1] if a in ends else a, ends[b][0] if b in ends else b))
    return nodes, edges


def _options(meta: dict[str, Any]) -> dict[str, Any]:
    """Constructor options from a node's spikekit metadata (numpy scalars back to Python)."""
    out: dict[str, Any] = {}
    for k, v in dict(meta.get("options", {})).items():
        if isinstance(v, dict):
            fields = {f: (x.item() if hasattr(x, "item") else x) for f, x in v.items() if f != "name"}
            v = _sg.get(str(v["name"]), **fields)
        elif isinstance(v, bytes):
            v = v.decode()
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def _module_for(name: str, node: Any, dt: float, table: dict[str, Callable[..., nn.Module]]) -> nn.Module:
    kind = type(node).__name__
    meta = dict((getattr(node, "metadata", None) or {}).get(_META, {}))
    cls_name = meta.get("class")
    cls_name = cls_name.decode() if isinstance(cls_name, bytes) else cls_name
    if cls_name is not None and cls_name.lower() in list_neurons():
        build = get_neuron(cls_name).from_nir
    elif kind in table:
        build = table[kind]
    else:
        raise NotImplementedError(
            f"from_nir: node {name!r} of type nir.{kind} has no spikekit module; supported: {', '.join(sorted(table))}"
        )
    try:
        module = build(node, dt, **_options(meta))
    except (TypeError, ValueError) as e:
        raise ValueError(f"from_nir: node {name!r} (nir.{kind}): {e}") from e
    if isinstance(module, Neuron):
        shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
        conv = module.to_nir(dt, shape)
        gain, fields = np.ones(shape), {}
        for f in ("r", "w_in"):
            if hasattr(node, f) and hasattr(conv, f):
                ratio = np.asarray(getattr(node, f), dtype=np.float64) / getattr(conv, f)
                if not np.allclose(ratio, 1.0, rtol=1e-6, atol=0):
                    gain, fields[f] = gain * ratio, getattr(node, f)
        if fields:
            return _InputGain(module, gain, fields)
    return module


def from_nir(
    graph_or_path: Any, dt: float | None = None, *, dtype: torch.dtype | None = None
) -> NIRGraphModule:
    """Build a spikekit model from a NIR graph (or a ``.nir`` file).

    Neuron nodes become the class that declares their type (``nir.LIF`` -> :class:`LIF`,
    ``nir.IF`` -> :class:`IF`, ``nir.CubaLIF`` -> :class:`CubaLIF`, ``nir.LI``/``CubaLI``/``I``
    -> :class:`LI`), or the class named in the node's spikekit metadata with its options.
    ``r`` and ``w_in`` beyond the conventions of :mod:`spikekit.export.nir` become an input
    gain, so a peer's graph runs as its ODE says under forward Euler.

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a file written by ``nir.write``.
        dt: the time step to run at (``beta = 1 - dt / tau``). ``None`` takes the ``dt`` saved
            by :func:`to_nir`; a graph from elsewhere has none, so it must be given.
        dtype: build the layers in this dtype (``torch.float64`` keeps float64 weights exact);
            ``None``: the default dtype.

    Returns:
        A :class:`NIRGraphModule` (time-first; :func:`spikekit.stepwise` and
        :func:`spikekit.record` work on it).

    Raises:
        ValueError: no ``dt``, or a ``dt`` that differs from the one saved in the graph, or a
            node whose parameters spikekit cannot run.
        NotImplementedError: a node type with no spikekit module (e.g. ``nir.Delay``).

    Shape:
        ``[T, B, *input_type]`` -> ``[T, B, *output_type]``.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), spk.LIF(tau=4.0))
        >>> back = spk.from_nir(spk.to_nir(net, (2,)))
        >>> xs = torch.rand(6, 1, 2)
        >>> bool((back(xs) == net(xs)).all())
        True
    """
    nir = _nir()
    graph = nir.read(graph_or_path) if isinstance(graph_or_path, (str, Path)) else graph_or_path
    meta = (getattr(graph, "metadata", None) or {}).get(_META, {})
    saved = meta.get("dt")
    if dt is None and saved is None:
        raise ValueError(
            "from_nir: give dt: NIR time constants are continuous and this graph carries no spikekit "
            "dt (beta = 1 - dt / tau); e.g. dt=1e-3 for a graph written with 1 ms steps"
        )
    if dt is not None and saved is not None and not math.isclose(float(dt), float(saved), rel_tol=1e-12):
        raise ValueError(f"from_nir: dt={dt} differs from the dt={float(saved)} the graph was written with")
    dt = float(saved if dt is None else dt)
    nodes, edges = _inline(graph)
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input) and not any(b == k for _, b in edges)]
    outputs = [k for k, v in nodes.items() if isinstance(v, nir.Output) and not any(a == k for a, _ in edges)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NotImplementedError(
            f"from_nir: graphs with one input and one output node are supported, got inputs {inputs}, outputs {outputs}"
        )
    table = _import_table()
    modules: dict[str, nn.Module | None] = {}
    for k, node in nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            modules[k] = None if k in (inputs[0], outputs[0]) else nn.Identity()
        else:
            modules[k] = _module_for(k, node, dt, table)
    model = NIRGraphModule(modules, edges, inputs[0], outputs[0], dt)
    return model.to(dtype) if dtype is not None else model
