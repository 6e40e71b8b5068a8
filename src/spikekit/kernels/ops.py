"""The fused scan as PyTorch custom ops: what ``torch.compile``, ``torch.export`` and
``torch.func`` see instead of numpy calls or an unrolled loop.

* ``spikekit::fused_scan(spec, xs, state, params, save) -> [outs, *final_state, ck]``
* ``spikekit::fused_scan_backward(spec, gout, gstate, xs, state, params, ck, param_grads)
  -> [gx, *gstate0, *gparams]`` (``gparams`` only with ``param_grads``)

``spec`` names a registered (step function, options) pair (:func:`spec_for`): a step is
identified by the function object itself, so a subclass that overrides the step gets its own
kernel, never its parent's. ``ck`` holds the state checkpoints the backward restarts from
(flat, empty when no gradient is needed). Both ops have fake implementations (shapes only),
the forward has an autograd formula (the backward op) and a vmap rule (the vmapped dimension
becomes one more feature dimension, so ``vmap(grad(...))`` per-sample gradients run the same
kernels). The implementation runs the kernels of the tensors' device: the numba printer's on
CPU (:mod:`spikekit.kernels.numba_cpu`), the Triton printer's on CUDA
(:mod:`spikekit.kernels.triton_gpu`). Both take the same arguments and keep the checkpoints
``ck`` in the same layout, in the compute dtype (float32 for 16-bit inputs), so either can run
the backward of the other's forward. Parameter gradients come back in the compute dtype and
are cast to each parameter's dtype after summing over the batch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikekit.kernels import buffers
from spikekit.kernels.graph import NotFusable, StepGraphs, trace_step

__all__ = ["Spec", "spec_for", "get_spec", "fused_scan", "fused_scan_backward", "run_fused"]


@dataclass(eq=False)
class Spec:
    """One (step function, options, state type, params type): the unit a kernel is made for."""

    key: str
    step: Callable[..., Any]
    options: Any
    state_type: type
    params_type: type
    _graphs: StepGraphs | None = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _constants: dict[tuple[torch.dtype, torch.device], Tensor] = field(default_factory=dict, repr=False)

    def constants(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The traced step's constant table as a tensor (made once per dtype and device: a
        copy to a GPU on every call would cost a host-to-device transfer)."""
        c = self._constants.get((dtype, device))
        if c is None:
            c = self._constants[(dtype, device)] = torch.tensor(
                self.graphs().constants, dtype=dtype, device=device
            )
        return c

    def graphs(self) -> StepGraphs:
        """The traced step (traced on first use; raises :class:`NotFusable` with the reason)."""
        if self._graphs is None and self._error is None:
            path = _graph_cache_path(self)
            if path is not None and path.exists():
                try:
                    self._graphs = StepGraphs.from_json(path.read_text())
                except (OSError, ValueError, KeyError, TypeError):
                    path = None  # unreadable: trace again (and leave the file alone)
            if self._graphs is None:
                try:
                    with _plain_eager():
                        self._graphs = trace_step(self.step, self.options, self.state_type, self.params_type)
                except NotFusable as e:
                    self._error = str(e)
                else:
                    if path is not None:
                        from spikekit.kernels.codegen import write_once

                        try:
                            write_once(path, self._graphs.to_json())
                        except OSError:
                            pass  # a read-only cache: trace in every process
        if self._error is not None:
            raise NotFusable(self._error)
        assert self._graphs is not None
        return self._graphs

    def fusable(self) -> bool:
        try:
            self.graphs()
        except NotFusable:
            return False
        return True


# ----------------------------------------------------------------------------- traced steps on disk
# Tracing a step costs little, but make_fx imports torch._inductor and torch._dynamo on first
# use (~1.8 s here), which made the first call of a neuron in every new process take 2-3 s
# with the kernels already compiled on disk. So the traced graphs of spikekit's own steps are
# cached next to the kernels. Only spikekit's own: the key hashes the whole package's source
# (every file, so a change to any helper the step calls makes a new key), the step's name, the
# options' repr (all of their fields: they are dataclasses) and torch's version. A step, an
# options type or a surrogate class defined elsewhere (a user's) is traced in each process:
# its source could change without the key noticing.
_GRAPH_FORMAT = "1"
_SOURCE_DIGEST: str | None = None


def _spikekit_source_digest() -> str:
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        import hashlib
        from pathlib import Path

        import spikekit

        h = hashlib.sha256()
        root = Path(spikekit.__file__).parent
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        _SOURCE_DIGEST = h.hexdigest()
    return _SOURCE_DIGEST


def _ours(obj: Any) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return all(c.__module__.startswith("spikekit.") for c in cls.__mro__[:-1] if c is not tuple)


def _graph_cache_path(spec: Spec) -> Any:
    """Where the traced graphs of ``spec`` are cached, or ``None`` if they are not cacheable."""
    import dataclasses
    import hashlib
    import inspect

    step, opts = spec.step, spec.options
    if not (inspect.isfunction(step) and step.__module__.startswith("spikekit.")):
        return None
    if "<locals>" in step.__qualname__:
        return None  # a closure: its name does not say what it captured
    if not dataclasses.is_dataclass(opts) or not _ours(opts):
        return None
    for f in dataclasses.fields(opts):
        v = getattr(opts, f.name)
        if not (
            v is None or isinstance(v, (bool, int, float, str)) or (dataclasses.is_dataclass(v) and _ours(v))
        ):
            return None  # e.g. a user's surrogate, or a value whose repr may not say everything
    if not (_ours(spec.state_type) and _ours(spec.params_type)):
        return None
    from spikekit.kernels.codegen import cache_dir

    ident = [
        _GRAPH_FORMAT,
        torch.__version__,
        _spikekit_source_digest(),
        step.__module__,
        step.__qualname__,
        repr(opts),
        spec.state_type.__qualname__,
        list(spec.state_type._fields),
        spec.params_type.__qualname__,
        list(spec.params_type._fields),
    ]
    key = hashlib.sha256(repr(ident).encode()).hexdigest()[:32]
    return cache_dir().parent / "graphs" / f"{key}.json"


@contextlib.contextmanager
def _plain_eager() -> Iterator[None]:
    """Trace the step as at top level, whatever transform the first call came from.

    The first call of a step may happen inside ``torch.func.grad``/``vmap`` (functorch
    layers), ``torch.export`` (fake, proxy and functional modes) or ``torch.no_grad``; the
    step's own trace (``make_fx`` on fresh fake scalars) must see none of them, else e.g.
    a constant of the step comes out as a data-dependent value under ``grad``.
    """
    from torch._functorch.pyfunctorch import temporarily_clear_interpreter_stack
    from torch.utils._python_dispatch import _disable_current_modes

    with temporarily_clear_interpreter_stack(), _disable_current_modes(), torch.enable_grad():
        yield


_SPECS: dict[str, Spec] = {}
_BY_IDENTITY: dict[tuple[Any, ...], Spec] = {}
_LOCK = threading.Lock()


def spec_for(step: Callable[..., Any], options: Any, state_type: type, params_type: type) -> Spec:
    """The spec of this exact step function and options (created once per process)."""
    ident = (step, options, state_type, params_type)
    s = _BY_IDENTITY.get(ident)
    if s is None:
        with _LOCK:
            s = _BY_IDENTITY.get(ident)
            if s is None:
                name = f"{getattr(step, '__module__', '?')}.{getattr(step, '__qualname__', repr(step))}"
                s = Spec(f"{name}#{len(_SPECS)}", step, options, state_type, params_type)
                _SPECS[s.key] = s
                _BY_IDENTITY[ident] = s
    return s


def get_spec(key: str) -> Spec:
    s = _SPECS.get(key)
    if s is None:
        raise RuntimeError(
            f"spikekit: no step registered as {key!r} in this process; a fused-scan call (e.g. in an "
            f"exported program) runs after the model it came from has been built and run once here"
        )
    return s


#: Steps between the state checkpoints a forward saves for its backward. The layout of
#: ``ck`` (``[ceil(T / CHECKPOINT), n_state, M]`` in the compute dtype) is part of the op, the
#: same for every backend, so a forward run by one backend can be differentiated by another.
CHECKPOINT = 16


def _n_checkpoints(T: Any) -> Any:
    return (T + CHECKPOINT - 1) // CHECKPOINT


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision a kernel computes in (and keeps its state and checkpoints in): float32
    for 16-bit inputs, else the input's own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _printer(xs: Tensor) -> Any:
    """The kernel module for this call: numba on CPU, Triton on CUDA. CPU tensors go to
    Triton too while ``kernels.use("triton")`` is active, or when numba cannot take them
    (16-bit: a forward that ran in Triton's interpreter, differentiated after the ``with``
    block): the op's implementations are interchangeable."""
    if xs.device.type == "cpu" and xs.dtype in (torch.float32, torch.float64):
        from spikekit.kernels import _FORCED  # the package's switch (set by kernels.use)

        if _FORCED.get() != "triton":
            from spikekit.kernels import numba_cpu

            return numba_cpu
    from spikekit.kernels import triton_gpu

    return triton_gpu


def _empty(shape: tuple[int, ...], dt: torch.dtype, device: torch.device) -> Tensor:
    return buffers.empty(shape, dt) if device.type == "cpu" else torch.empty(shape, dtype=dt, device=device)


def _scan_impl(spec: str, xs: Tensor, state: list[Tensor], params: list[Tensor], save: bool) -> list[Tensor]:
    """Run a registered step over ``xs`` ``[T, B, *features]``; see the module docstring."""
    sp = get_spec(spec)
    g = sp.graphs()
    T = xs.shape[0]
    feat = xs.shape[1:]
    M = feat.numel()
    dt, ct = xs.dtype, compute_dtype(xs.dtype)
    x2 = xs.detach().contiguous().view(T, M)
    s = _columns(state, feat, M, ct, xs.device)  # a fresh copy: the kernel updates it in place
    p = _param_columns(params, feat, ct, xs.device)
    out = _empty((T, M), dt, xs.device)
    ck = torch.empty((_n_checkpoints(T) if save else 0), len(state), M, dtype=ct, device=xs.device)
    _printer(xs).run_forward(g, x2, s, p, sp.constants(ct, xs.device), out, ck, CHECKPOINT)
    return [out.view(xs.shape), *(s[i].view(feat).to(dt, copy=True) for i in range(len(state))), ck.view(-1)]


def _param_columns(params: list[Tensor], feat: torch.Size, dt: torch.dtype, device: torch.device) -> Tensor:
    """The parameters as the kernels read them: ``[nP, P]`` contiguous, column ``j`` of the
    ``M = feat.numel()`` columns reading ``[:, j % P]``. ``P`` is 1 when every parameter is one
    value, the number of features per sample when none varies over the batch, else ``M``.

    Measured on the conv benchmark (T = 4, batch 64, 28 x 28 maps): broadcasting four scalar
    parameters to all ``M`` columns took 356 us per ``torch.stack``, 60 of them in 5 steps.
    """
    if not params:
        return torch.empty(0, 1, dtype=dt, device=device)
    if all(p.numel() == 1 for p in params):
        return torch.stack([p.detach().reshape(()).to(dt) for p in params]).reshape(len(params), 1)
    per_sample = feat[1:]
    if all(p.ndim < len(feat) or p.shape[0] == 1 for p in params):
        no_batch = [p[0] if p.ndim == len(feat) else p for p in params]
        return _columns(no_batch, per_sample, per_sample.numel(), dt, device)
    return _columns(params, feat, feat.numel(), dt, device)


def _columns(ts: list[Tensor], feat: torch.Size, M: int, dt: torch.dtype, device: torch.device) -> Tensor:
    """``[len(ts), M]`` contiguous: each tensor broadcast to the columns ``feat``."""
    if not ts:
        return torch.empty(0, M, dtype=dt, device=device)
    out = torch.stack([t.detach().to(dt).expand(feat) for t in ts]).reshape(len(ts), M)
    return out  # torch.stack always allocates: never a view of the caller's tensors


_DEVICES = ("cpu", "cuda")
fused_scan = torch.library.custom_op(
    "spikekit::fused_scan", _scan_impl, mutates_args=(), device_types=_DEVICES
)


@fused_scan.register_fake
def _(spec: str, xs: Tensor, state: list[Tensor], params: list[Tensor], save: bool) -> list[Tensor]:
    T = xs.shape[0]
    n = _n_checkpoints(T) if save else 0
    ck = xs.new_empty((n * len(state) * xs.shape[1:].numel(),), dtype=compute_dtype(xs.dtype))
    return [xs.new_empty(xs.shape), *(s.new_empty(xs.shape[1:]) for s in state), ck]


def _scan_backward_impl(
    spec: str,
    gout: Tensor,
    gstate: list[Tensor],
    xs: Tensor,
    state: list[Tensor],
    params: list[Tensor],
    ck: Tensor,
    param_grads: bool,
) -> list[Tensor]:
    """Gradients of :func:`fused_scan` w.r.t. ``xs``, the initial state and, if
    ``param_grads``, (per column, in the compute dtype) the params; see the module docstring."""
    sp = get_spec(spec)
    g = sp.graphs()
    T = xs.shape[0]
    feat = xs.shape[1:]
    M = feat.numel()
    dt, ct = xs.dtype, compute_dtype(xs.dtype)
    n_s = len(state)
    if ck.numel() != _n_checkpoints(T) * n_s * M:
        raise RuntimeError(
            "spikekit fused_scan: backward called on a forward that saved no checkpoints "
            "(it ran without gradients enabled)"
        )
    x2 = xs.detach().contiguous().view(T, M)
    p = _param_columns(params, feat, ct, xs.device)
    go = gout.detach().to(dt).expand(xs.shape).reshape(T, M)  # a view when gout is a broadcast
    if go.stride(1) not in (0, 1):  # the kernel reads a row of columns as one run, or one value
        go = go.contiguous()
    st_t, st_m = go.stride()
    span = (T - 1) * st_t + (M - 1) * st_m + 1
    go_flat = go.as_strided((span,), (1,), go.storage_offset())
    gs = _columns(gstate, feat, M, ct, xs.device)  # updated in place by the kernel
    gx = _empty((T, M), dt, xs.device)
    gp = torch.zeros(len(params) if param_grads else 0, M, dtype=ct, device=xs.device)
    _printer(xs).run_backward(
        g,
        "backward" if param_grads else "backward_no_params",
        x2,
        p,
        sp.constants(ct, xs.device),
        ck.view(-1, n_s, M),
        CHECKPOINT,
        go_flat,
        st_t,
        st_m,
        gs,
        gx,
        gp,
    )
    return [
        gx.view(xs.shape),
        *(gs[i].view(feat).to(dt, copy=True) for i in range(n_s)),
        *(gp[i].view(feat).clone() for i in range(gp.shape[0])),
    ]


fused_scan_backward = torch.library.custom_op(
    "spikekit::fused_scan_backward", _scan_backward_impl, mutates_args=(), device_types=_DEVICES
)


@fused_scan_backward.register_fake
def _(
    spec: str,
    gout: Tensor,
    gstate: list[Tensor],
    xs: Tensor,
    state: list[Tensor],
    params: list[Tensor],
    ck: Tensor,
    param_grads: bool,
) -> list[Tensor]:
    feat = xs.shape[1:]
    return [
        xs.new_empty(xs.shape),
        *(xs.new_empty(feat) for _ in state),
        *(xs.new_empty(feat, dtype=compute_dtype(xs.dtype)) for _ in (params if param_grads else ())),
    ]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    spec, xs, state, params, _save = inputs
    ctx.spec = spec
    ctx.n_s = len(state)
    ctx.p_meta = [(p.shape, p.dtype) for p in params]
    ctx.param_grads = any(p.requires_grad for p in params)
    ctx.save_for_backward(xs, *state, *params, output[-1])


def _backward(
    ctx: Any, grads: list[Tensor | None], backward_op: Callable[..., Any] | None = None
) -> tuple[Any, ...]:
    saved = ctx.saved_tensors
    n_s = ctx.n_s
    xs, state, params, ck = saved[0], list(saved[1 : 1 + n_s]), list(saved[1 + n_s : -1]), saved[-1]
    gout = grads[0] if grads[0] is not None else xs.new_zeros(()).expand(xs.shape)
    gstate = [
        g if g is not None else s.new_zeros(()).expand(s.shape)
        for g, s in zip(grads[1 : 1 + n_s], state, strict=True)
    ]
    res = (backward_op or fused_scan_backward)(ctx.spec, gout, gstate, xs, state, params, ck, ctx.param_grads)
    if ctx.param_grads:
        gp = [g.sum_to_size(shape).to(dt) for g, (shape, dt) in zip(res[1 + n_s :], ctx.p_meta, strict=True)]
    else:
        gp = [None] * len(params)
    return None, res[0], list(res[1 : 1 + n_s]), gp, None


fused_scan.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------- vmap
# A vmapped dimension is independent neurons: put it right after the batch dimension, i.e.
# as the first feature dimension, where batched parameters broadcast as per-neuron ones.
def _to_feature(t: Tensor, bdim: int | None, n: int, lead: int) -> Tensor:
    """``t`` with its vmapped dim (or a broadcast one) at position ``lead``."""
    if bdim is None:
        t = t.unsqueeze(lead)
        return t.expand(*t.shape[:lead], n, *t.shape[lead + 1 :])
    return t.movedim(bdim, lead)


def _param_to_feature(p: Tensor, bdim: int | None, feat_dims: int) -> Tensor:
    if bdim is None:
        return p
    p = p.movedim(bdim, 0)
    # [N, *p] -> [N, 1, ..., *p] with feat_dims dims in all (p broadcasts to the features after N)
    pad = feat_dims - p.ndim
    return p.reshape(p.shape[0], *([1] * pad), *p.shape[1:])


def _vmap_forward(
    info: Any,
    in_dims: tuple[Any, ...],
    spec: str,
    xs: Tensor,
    state: list[Tensor],
    params: list[Tensor],
    save: bool,
) -> tuple[Any, Any]:
    n = info.batch_size
    _, xd, sd, pd, _ = in_dims
    xs2 = _to_feature(xs, xd, n, 2)
    feat_dims = xs2.ndim - 2  # N and the features
    st2 = [_to_feature(s, d, n, 1) for s, d in zip(state, sd, strict=True)]
    ps2 = [_param_to_feature(p, d, feat_dims) for p, d in zip(params, pd, strict=True)]
    res = fused_scan(spec, xs2, st2, ps2, save)
    return res, [2, *([1] * len(state)), None]


def _vmap_backward(
    info: Any,
    in_dims: tuple[Any, ...],
    spec: str,
    gout: Tensor,
    gstate: list[Tensor],
    xs: Tensor,
    state: list[Tensor],
    params: list[Tensor],
    ck: Tensor,
    param_grads: bool,
) -> tuple[Any, Any]:
    n = info.batch_size
    _, gd, gsd, xd, sd, pd, cd, _ = in_dims
    if cd is not None:
        raise NotImplementedError("spikekit fused_scan: vmap over saved checkpoints is not supported")
    xs2 = _to_feature(xs, xd, n, 2)
    feat_dims = xs2.ndim - 2
    res = fused_scan_backward(
        spec,
        _to_feature(gout, gd, n, 2),
        [_to_feature(g, d, n, 1) for g, d in zip(gstate, gsd, strict=True)],
        xs2,
        [_to_feature(s, d, n, 1) for s, d in zip(state, sd, strict=True)],
        [_param_to_feature(p, d, feat_dims) for p, d in zip(params, pd, strict=True)],
        ck,
        param_grads,
    )
    # every output is per column [*, B, N, *F]: the vmapped dim sits after the batch dim
    return res, [2, *([1] * (len(res) - 1))]


fused_scan.register_vmap(_vmap_forward)
fused_scan_backward.register_vmap(_vmap_backward)


# ----------------------------------------------------------------------------- torch.func
# torch.library's register_autograd builds an autograd.Function without ``setup_context``,
# which torch.func's grad/vjp/jacrev refuse ("must override the setup_context staticmethod";
# pytorch issues 168393, 170834, 179652, open in torch 2.14). Under a torch.func transform the
# op is therefore called through this Function instead: the same forward and backward ops,
# in the setup_context form, with a generated vmap rule (which runs the ops' own vmap rules),
# so ``vmap(grad(...))`` per-sample gradients still run the fused kernels. Outside torch.func
# (eager autograd, torch.compile, torch.export) the op is called directly, so compiled and
# exported graphs show ``spikekit::fused_scan`` itself.
class _FusedScanFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(spec: str, n_s: int, save: bool, xs: Tensor, *sp: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        return tuple(fused_scan(spec, xs, list(sp[:n_s]), list(sp[n_s:]), save))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:  # type: ignore[override]
        spec, n_s, save, xs, *sp = inputs
        ctx.mark_non_differentiable(output[-1])  # the checkpoints
        _setup_context(ctx, (spec, xs, sp[:n_s], sp[n_s:], save), output)

    @staticmethod
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        _, gx, gstate, gparams, _ = _backward(ctx, list(grads), _FusedScanBackwardFunction.call)
        return None, None, None, gx, *gstate, *gparams


class _FusedScanBackwardFunction(torch.autograd.Function):
    """The backward op for torch.func (its own generated autograd kernel has the same defect)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(
        spec: str, n_s: int, param_grads: bool, gout: Tensor, ck: Tensor, xs: Tensor, *rest: Tensor
    ) -> Any:  # type: ignore[override]
        gstate, state, params = rest[:n_s], rest[n_s : 2 * n_s], rest[2 * n_s :]
        return tuple(
            fused_scan_backward(spec, gout, list(gstate), xs, list(state), list(params), ck, param_grads)
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:  # type: ignore[override]
        pass

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:  # type: ignore[override]
        raise RuntimeError("spikekit fused_scan: double backward (gradients of gradients) is not supported")

    @staticmethod
    def call(
        spec: str,
        gout: Tensor,
        gstate: list[Tensor],
        xs: Tensor,
        state: list[Tensor],
        params: list[Tensor],
        ck: Tensor,
        param_grads: bool,
    ) -> list[Tensor]:
        return list(
            _FusedScanBackwardFunction.apply(
                spec, len(state), param_grads, gout, ck, xs, *gstate, *state, *params
            )
        )


def _in_functorch() -> bool:
    # Dynamo traces torch.func transforms itself (and the op's registered autograd with them).
    if torch.compiler.is_compiling():
        return False
    return torch._C._functorch.peek_interpreter_stack() is not None


# ----------------------------------------------------------------------------- plain eager
# In plain eager mode (no compiler, tracer, transform, mode or tensor subclass anywhere) the
# op's own dispatch adds nothing but Python: torch.library's autograd wrapper flattens and
# unflattens the arguments and redispatches. Python runs slowly right after a large torch op
# (the layer before has just swept the caches): inside Linear(512) + LIF on 2 cores, the
# neuron's forward without its kernel took 1.85 ms through the op and 1.08 ms this way (with
# the parameter shape check no longer calling torch.broadcast_shapes), against a 2.4-2.9 ms
# kernel. So plain eager calls the same implementations through this Function; everything
# else goes through the op.
class _EagerFusedScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, spec: str, n_s: int, save: bool, xs: Tensor, *sp: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        state, params = list(sp[:n_s]), list(sp[n_s:])
        res = _scan_impl(spec, xs, state, params, save)
        ctx.mark_non_differentiable(res[-1])
        _setup_context(ctx, (spec, xs, state, params, save), res)
        return tuple(res)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, *grads: Tensor | None) -> tuple[Any, ...]:  # type: ignore[override]
        _, gx, gstate, gparams, _ = _backward(ctx, list(grads), _scan_backward_impl)
        return None, None, None, gx, *gstate, *gparams


def _is_plain_eager(tensors: tuple[Any, ...]) -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if torch._C._len_torch_dispatch_stack() or torch._C._is_torch_function_mode_enabled():
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    return all(type(t) is Tensor for t in tensors)


def run_fused(spec: str, xs: Tensor, state: Any, params: Any) -> tuple[Tensor, Any]:
    """Call the fused op for the spec key: ``(outs, final_state)`` as the reference scan returns."""
    tensors = (xs, *state, *params)
    save = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if _is_plain_eager(tensors):
        res = _EagerFusedScan.apply(spec, len(state), save, xs, *state, *params)
    elif _in_functorch():
        res = _FusedScanFunction.apply(spec, len(state), save, xs, *state, *params)
    else:
        res = fused_scan(spec, xs, list(state), list(params), save)
    return res[0], type(state)(*res[1 : 1 + len(state)])
