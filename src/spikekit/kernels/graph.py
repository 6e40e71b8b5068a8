"""The kernel generator's front end: a neuron step, traced into a small scalar program.

A step function ``step(x, state, params, options) -> (out, new_state)`` is traced once per
(step, options) with PyTorch's own tracer (``make_fx`` on 0-d fake tensors), and so is its
vector-Jacobian product (``torch.func.vjp``, which goes through the surrogate's one
``grad`` definition, a user's subclass included). Both graphs are lowered to a
:class:`Program`: straight-line scalar statements over named inputs, with every literal
lifted into a constant table. Printers (the numba CPU backend, later Triton) turn a program
into the body of a loop over time; because constants are a table, neurons whose graphs differ
only in numbers (a surrogate's ``alpha``, ``reset="hard"`` vs another value) share one kernel.

What is refused (the step then runs on the reference scan): anything that is not elementwise
on one neuron (every traced value must be 0-d, and every op must be in :data:`OPS`),
data-dependent Python control flow (fake tensors have no values), integer arithmetic, and
changes of floating-point precision inside the step.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["NotFusable", "Program", "StepGraphs", "trace_step", "OPS"]


class NotFusable(Exception):
    """The step cannot be turned into a fused kernel; the message says why."""


aten = torch.ops.aten

# aten overload packet -> (op name of the program, how its arguments are read).
# "unary"/"binary": tensor-or-scalar operands; the rest are handled one by one below.
_UNARY = {
    aten.neg: "neg",
    aten.exp: "exp",
    aten.expm1: "expm1",
    aten.log: "log",
    aten.log1p: "log1p",
    aten.sqrt: "sqrt",
    aten.rsqrt: "rsqrt",
    aten.reciprocal: "reciprocal",
    aten.sin: "sin",
    aten.cos: "cos",
    aten.tanh: "tanh",
    aten.atan: "atan",
    aten.erf: "erf",
    aten.abs: "abs",
    aten.sign: "sign",
    aten.sigmoid: "sigmoid",
    aten.relu: "relu",
    aten.logical_not: "not",
    aten.isnan: "isnan",
    aten.bitwise_not: "not",
}
_BINARY = {
    aten.mul: "mul",
    aten.div: "div",
    aten.maximum: "max",
    aten.minimum: "min",
    aten.pow: "pow",
    aten.atan2: "atan2",
    aten.ge: "ge",
    aten.gt: "gt",
    aten.le: "le",
    aten.lt: "lt",
    aten.eq: "eq",
    aten.ne: "ne",
    aten.logical_and: "and",
    aten.logical_or: "or",
    aten.bitwise_and: "and",
    aten.bitwise_or: "or",
}
_IDENTITY = {
    aten.detach,
    aten.alias,
    aten.clone,
    aten.view,
    aten.reshape,
    aten._unsafe_view,
    aten.expand,
    aten.squeeze,
    aten.unsqueeze,
    aten.lift_fresh_copy,
    aten.contiguous,
    aten.permute,
    aten.t,
}
_CONST_LIKE = {aten.zeros_like: 0.0, aten.ones_like: 1.0, aten.zeros: 0.0, aten.ones: 1.0}
_CONST_LIKE.update({aten.new_zeros: 0.0, aten.new_ones: 1.0})
# ops whose value is one of their arguments (position): full_like(x, v), scalar_tensor(v), ...
_CONST_ARG = {aten.full_like: 1, aten.full: 1, aten.new_full: 2, aten.scalar_tensor: 0, aten.fill: 1}
# Backward ops the tracer emits for some forward ops; decomposed into the ops above.
_DECOMPOSE = [
    aten.sigmoid_backward,
    aten.tanh_backward,
    aten.threshold_backward,
    aten.softplus,
    aten.softplus_backward,
    aten.hardtanh,
    aten.hardtanh_backward,
    aten.leaky_relu,
    aten.leaky_relu_backward,
    aten.clamp,
    aten.clamp_min,
    aten.clamp_max,
    aten.masked_fill,
    aten.heaviside,
    aten.square,
    aten.rsub,
]
#: Every op a program may hold (the printers implement exactly these).
_SMALL_POWERS = (2.0, 3.0, 4.0)
#: Every op a program may hold (the printers implement exactly these).
OPS = frozenset(
    {*_UNARY.values(), *_BINARY.values(), *(f"pow{int(e)}" for e in _SMALL_POWERS)}
    | {"add", "sub", "where", "to_float", "to_bool", "copy"}
)


@dataclass(frozen=True)
class Program:
    """Straight-line scalar code: ``(name, op, args)`` statements over named inputs.

    Args:
        inputs: names the statements read (in the order the caller binds them).
        body: statements; an argument is a name, or ``("c", i)``: constant ``i`` of the table.
        outputs: the names (or constant refs) whose values are the results.
        kinds: ``"f"`` (floating point) or ``"b"`` (bool) for every defined name.
    """

    inputs: tuple[str, ...]
    body: tuple[tuple[str, str, tuple[Any, ...]], ...]
    outputs: tuple[Any, ...]
    kinds: tuple[tuple[str, str], ...]

    def kind(self, name: str) -> str:
        return dict(self.kinds)[name]


@dataclass(frozen=True)
class StepGraphs:
    """A traced step: forward and backward programs and one shared constant table.

    The forward reads ``x, s0.., p0..`` and returns ``out, new_s0..``. The backward reads
    those plus ``gout, gs0..`` (the gradients of the step's outputs) and returns
    ``gx, gs0.., gp0..`` (gradients of the step's input, state and parameters);
    ``backward_no_params`` is the same without the ``gp`` outputs (and whatever only they
    need), for the common case of parameters that are not learnt.
    """

    forward: Program
    state_only: Program  # the forward restricted to the new state (recomputation in backward)
    backward: Program
    backward_no_params: Program
    constants: tuple[float, ...]
    n_state: int
    n_params: int

    def to_json(self) -> str:
        """The graphs as JSON (for the on-disk cache of traced steps); see :meth:`from_json`."""
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> StepGraphs:
        """Inverse of :meth:`to_json`."""

        def tuples(v: Any) -> Any:
            return tuple(tuples(x) for x in v) if isinstance(v, list) else v

        d = json.loads(text)
        progs = {k: Program(**{f: tuples(x) for f, x in d[k].items()}) for k in _PROGRAMS}
        return StepGraphs(
            **progs, constants=tuples(d["constants"]), n_state=d["n_state"], n_params=d["n_params"]
        )

    @functools.cached_property  # read on every fused call (kernel lookup): hash once
    def key(self) -> str:
        """Hash of the programs' structure (not the constants' values)."""
        text = repr(
            (self.forward, self.state_only, self.backward, self.backward_no_params, len(self.constants))
        )
        return hashlib.sha256(text.encode()).hexdigest()[:20]


_PROGRAMS = ("forward", "state_only", "backward", "backward_no_params")


def _decompositions() -> dict[Any, Callable[..., Any]]:
    from torch._decomp import get_decompositions

    return get_decompositions(_DECOMPOSE)


class _Lowering:
    """Walks fx graphs and emits program statements, sharing one constant table."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        # 0 and 1 first: printers read ZERO and ONE in the kernel's dtype from there
        self.constants: list[float] = [0.0, 1.0]

    def const(self, value: Any) -> tuple[str, int]:
        # One slot per use, never shared by value: the program's structure must not depend on
        # the numbers (alpha = 2 making a constant equal to another would change the kernel).
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)):
            raise NotFusable(f"unsupported constant {value!r} ({type(value).__name__})")
        self.constants.append(float(value))
        return ("c", len(self.constants) - 1)

    def lower(self, gm: torch.fx.GraphModule, input_names: list[str], wanted: list[int]) -> Program:
        env: dict[torch.fx.Node, Any] = {}
        kinds: dict[str, str] = {}
        body: list[tuple[str, str, tuple[Any, ...]]] = []
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(input_names):
            raise NotFusable(f"traced {len(placeholders)} inputs, expected {len(input_names)}")
        for n, name in zip(placeholders, input_names, strict=True):
            env[n] = name
            kinds[name] = "f"
        out_node = next(n for n in gm.graph.nodes if n.op == "output")
        flat = out_node.args[0]
        flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
        needed = self._needed([flat[i] for i in wanted])
        counter = 0

        def ref(a: Any) -> Any:
            if isinstance(a, torch.fx.Node):
                return env[a]
            return self.const(a)

        def kind_of(a: Any) -> str:
            return kinds.get(a, "f") if isinstance(a, str) else "f"

        for node in gm.graph.nodes:
            if node.op in ("placeholder", "output") or node not in needed:
                continue
            val = node.meta.get("val")
            if node.op == "get_attr":
                t = getattr(gm, node.target)
                if not isinstance(t, Tensor) or t.numel() != 1:
                    raise NotFusable(f"a tensor constant of shape {tuple(t.shape)} in the step")
                env[node] = self.const(float(t.reshape(())))
                continue
            if node.op != "call_function":
                raise NotFusable(f"unsupported graph node {node.op} {node.target}")
            if not isinstance(val, Tensor):
                raise NotFusable(f"{node.target} does not return one tensor")
            if val.ndim != 0:
                raise NotFusable(
                    f"{node.target} makes a value of shape {tuple(val.shape)} from per-neuron scalars: "
                    f"the step is not elementwise"
                )
            if val.dtype == torch.bool:
                kind = "b"
            elif val.dtype == self.dtype:
                kind = "f"
            else:
                raise NotFusable(f"{node.target} computes in {val.dtype} (the input is {self.dtype})")
            packet = node.target.overloadpacket
            args = list(node.args)
            kwargs = dict(node.kwargs)
            if packet in _IDENTITY:
                env[node] = ref(args[0])
                continue
            if packet in _CONST_LIKE:
                env[node] = self.const(_CONST_LIKE[packet])
                continue
            if packet in _CONST_ARG:
                value = args[_CONST_ARG[packet]]
                env[node] = ref(value) if isinstance(value, torch.fx.Node) else self.const(value)
                continue
            counter += 1
            name = f"t{counter}"
            if packet is aten._to_copy:
                src = ref(args[0])
                if kind == "b":
                    stmt = ("to_bool", (src,))
                elif kind_of(src) == "b":
                    stmt = ("to_float", (src,))
                else:
                    stmt = ("copy", (src,))
            elif packet in _UNARY:
                stmt = (_UNARY[packet], (ref(args[0]),))
            elif packet is aten.pow and isinstance(args[1], (int, float)) and float(args[1]) in _SMALL_POWERS:
                # x**2 as x*x: a pow call is ~10x a multiply and blocks vectorisation. The
                # exponent stays in the program's structure (not the constant table).
                stmt = (f"pow{int(args[1])}", (ref(args[0]),))
            elif packet in _BINARY:
                if kwargs.get("rounding_mode") is not None:
                    raise NotFusable(f"{node.target} with rounding_mode is not supported")
                stmt = (_BINARY[packet], (ref(args[0]), ref(args[1])))
            elif packet in (aten.add, aten.sub):
                alpha = kwargs.get("alpha", 1)
                a, b = ref(args[0]), ref(args[1])
                if alpha != 1:
                    counter += 1
                    scaled = f"t{counter}"
                    body.append((scaled, "mul", (b, self.const(alpha))))
                    kinds[scaled] = "f"
                    b = scaled
                stmt = ("add" if packet is aten.add else "sub", (a, b))
            elif packet is aten.where:
                stmt = ("where", (ref(args[0]), ref(args[1]), ref(args[2])))
            else:
                raise NotFusable(
                    f"unsupported op {node.target} in the step (not elementwise, or not yet known)"
                )
            op, operands = stmt
            if any(kind_of(a) == "b" for a in operands) and op not in {
                "where",
                "to_float",
                "to_bool",
                "and",
                "or",
                "not",
                "eq",
                "ne",
            }:
                # bool arithmetic (True * x): read the bools as 0/1 first
                fixed = []
                for a in operands:
                    if kind_of(a) == "b":
                        counter += 1
                        cast = f"t{counter}"
                        body.append((cast, "to_float", (a,)))
                        kinds[cast] = "f"
                        fixed.append(cast)
                    else:
                        fixed.append(a)
                operands = tuple(fixed)
            if op == "where" and kind_of(operands[0]) != "b":
                raise NotFusable("torch.where with a non-bool condition")
            body.append((name, op, operands))
            kinds[name] = kind
            env[node] = name
        outputs = tuple(
            ref(flat[i]) if isinstance(flat[i], torch.fx.Node) else self.const(0.0) for i in wanted
        )
        body, outputs = _cse(body, outputs)
        for o in outputs:
            if isinstance(o, str) and kinds.get(o) == "b":
                raise NotFusable("the step returns a bool tensor; return floating point")
        return Program(tuple(input_names), tuple(body), outputs, tuple(sorted(kinds.items())))

    @staticmethod
    def _needed(roots: list[Any]) -> set[torch.fx.Node]:
        seen: set[torch.fx.Node] = set()
        stack = [r for r in roots if isinstance(r, torch.fx.Node)]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(n.all_input_nodes)
        return seen


def _cse(
    body: list[tuple[str, str, tuple[Any, ...]]], outputs: tuple[Any, ...]
) -> tuple[list[tuple[str, str, tuple[Any, ...]]], tuple[Any, ...]]:
    """Common subexpressions once: the traced backward recomputes forward values, and each
    statement costs compile time. Constants are compared by slot, so values never matter."""
    seen: dict[tuple[str, tuple[Any, ...]], str] = {}
    alias: dict[str, str] = {}
    out = []
    for name, op, args in body:
        args = tuple(alias.get(a, a) if isinstance(a, str) else a for a in args)
        const_args = tuple(a for a in args if isinstance(a, tuple))
        key = (op, args)
        if not const_args and key in seen:
            alias[name] = seen[key]
            continue
        seen[key] = name
        out.append((name, op, args))
    return out, tuple(alias.get(o, o) if isinstance(o, str) else o for o in outputs)


def trace_step(
    step: Callable[..., tuple[Tensor, Any]],
    options: Any,
    state_type: type,
    params_type: type,
    dtype: torch.dtype = torch.float64,
) -> StepGraphs:
    """Trace ``step`` and its vector-Jacobian product into :class:`StepGraphs`.

    Raises:
        NotFusable: the step is not an elementwise function of one neuron's values.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    n_s, n_p = len(state_type._fields), len(params_type._fields)

    def fwd(x: Tensor, *sp: Tensor) -> tuple[Tensor, ...]:
        out, new = step(x, state_type(*sp[:n_s]), params_type(*sp[n_s:]), options)
        if not isinstance(out, Tensor) or not isinstance(new, tuple) or len(new) != n_s:
            raise NotFusable(
                f"the step must return (tensor, {state_type.__name__}), got {type(out).__name__}"
            )
        return (out, *new)

    def bwd(x: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        primals, cot = args[: n_s + n_p], args[n_s + n_p :]
        _, vjp = torch.func.vjp(fwd, x, *primals)
        return tuple(vjp(tuple(cot)))

    def zeros(n: int) -> list[Tensor]:  # distinct tensors: make_fx binds one object to one input
        return [torch.zeros((), dtype=dtype) for _ in range(n)]

    try:
        g_fwd = make_fx(fwd, decomposition_table=_decompositions(), tracing_mode="fake")(
            *zeros(1 + n_s + n_p)
        )
        g_bwd = make_fx(bwd, decomposition_table=_decompositions(), tracing_mode="fake")(
            *zeros(2 + 2 * n_s + n_p)
        )
    except NotFusable:
        raise
    except Exception as e:  # data-dependent control flow, unsupported Python, ...
        raise NotFusable(f"tracing the step failed ({type(e).__name__}: {e})") from e
    s = [f"s{i}" for i in range(n_s)]
    p = [f"p{i}" for i in range(n_p)]
    low = _Lowering(dtype)
    forward = low.lower(g_fwd, ["x", *s, *p], list(range(1 + n_s)))
    state_only = low.lower(g_fwd, ["x", *s, *p], list(range(1, 1 + n_s)))
    names = ["x", *s, *p, "gout", *(f"g{n}" for n in s)]
    backward = low.lower(g_bwd, names, list(range(1 + n_s + n_p)))
    backward_no_params = low.lower(g_bwd, names, list(range(1 + n_s)))
    return StepGraphs(forward, state_only, backward, backward_no_params, tuple(low.constants), n_s, n_p)
