"""Training: a classifier (model + encoder + loss, whose step returns a dict) and a trainer.

The split follows eve-mli: :class:`Classifier` knows *what* to compute for one batch
(``step(batch) -> {"loss", "acc", "n"}``); :class:`Trainer` knows *how* to run it (optimiser,
schedule, clipping, bf16/fp16 autocast, truncated BPTT, DDP, logging, checkpoints, Ctrl-C).
:func:`bptt_epoch` is snntorch's one-call BPTT epoch on top of both.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import spikekit as spk
from spikekit.modes import finite_flags
from spikekit.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from spikekit.train.logger import MetricsLogger

__all__ = [
    "Classifier",
    "Trainer",
    "bptt_epoch",
    "rate_cross_entropy",
    "seed_everything",
    "get_encoder",
    "resolve_device",
    "describe_device",
    "check_precision",
    "PRECISIONS",
    "NonFiniteError",
    "CHECKPOINT_KEYS",
]

# What a resume reads from a training checkpoint; one missing is named instead of a KeyError.
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "batch_idx", "sums", "rng", "history", "best_acc")


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or non-finite weights; the run stopped without saving them."""


Criterion = Callable[[Tensor, Tensor], Tensor]

# Autocast dtype of each precision; fp32 runs without autocast.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str = "auto", local_rank: int | None = None) -> str:
    """Turn a device request into the concrete device a run uses, or say why it cannot.

    Args:
        spec: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
            ``"mps"``.
        local_rank: this process's ``LOCAL_RANK`` under torchrun, or ``None``. It picks the GPU
            for ``"auto"`` and ``"cuda"`` (one GPU per process); an explicit ``"cuda:N"`` wins.

    Returns:
        ``"cpu"``, ``"mps"`` or ``"cuda:N"`` (always with an index, so the recorded config and
        DDP's ``device_ids`` name one GPU).

    Raises:
        ValueError: ``spec`` is not one of the accepted forms, or names a device this machine
            does not have.
    """
    s = str(spec).strip().lower()
    if not DEVICE_SPEC.fullmatch(s):
        raise ValueError(f"expected {DEVICE_CHOICES}, got {spec!r}")
    if s == "auto":
        s = "cuda" if torch.cuda.is_available() else "cpu"
    if s == "cpu":
        return "cpu"
    if s == "mps":
        if not _mps_available():
            raise ValueError("expected a machine with an Apple MPS device for 'mps', but torch sees none")
        return "mps"
    if not torch.cuda.is_available():
        raise ValueError(
            f"expected a CUDA device for {spec!r}, but torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}); use --device auto or cpu"
        )
    count = torch.cuda.device_count()
    if ":" in s:
        index = int(s.split(":", 1)[1])
        where = f"got {s}"
    elif local_rank is not None:
        index = local_rank
        where = f"got LOCAL_RANK={local_rank}"
    else:
        index = torch.cuda.current_device()
        where = f"got cuda:{index}"
    if index >= count:
        raise ValueError(
            f"expected a CUDA index below the {count} visible device(s) (cuda:0..cuda:{count - 1}), {where}"
        )
    return f"cuda:{index}"


def describe_device(device: str | torch.device) -> str:
    """One human line for a resolved device, e.g. ``"cuda:0 (NVIDIA H200)"`` or ``"cpu (no CUDA device available)"``.

    Args:
        device: a device as :func:`resolve_device` returns it.

    Returns:
        The device followed by what it is, or why it was chosen.
    """
    d = torch.device(device)
    if d.type == "cuda":
        return f"{d} ({torch.cuda.get_device_name(d)})"
    if d.type == "cpu":
        return "cpu (no CUDA device available)" if not torch.cuda.is_available() else "cpu (as requested)"
    return f"{d}"


def check_precision(precision: str, device_type: str) -> None:
    """Fail early, with the reason, when ``precision`` cannot run on ``device_type``.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device_type: ``"cpu"``, ``"cuda"``, ``"mps"``.

    Raises:
        ValueError: unknown precision, or the installed torch has no autocast (or no GradScaler,
            for fp16) of that dtype on that device; torch would otherwise only warn and quietly
            train in fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"expected precision {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return
    problem = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.autocast(device_type, dtype=dtype)
            if precision == "fp16":
                torch.amp.GradScaler(device_type)
        except (RuntimeError, ValueError) as e:
            problem = str(e)
    # Where the dtype or device is unsupported torch warns "... Disabling ..." and goes on in fp32.
    problem = problem or next((str(w.message) for w in caught if "disabl" in str(w.message).lower()), None)
    if problem:
        first = problem.strip().splitlines()[0]
        raise ValueError(
            f"expected a device where torch {torch.__version__} supports {precision} autocast, "
            f"but on {device_type} it says: {first}"
        )


def rate_cross_entropy(outs: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of the time-averaged readout ``outs.mean(0)`` (``outs``: ``[T, B, C]``)."""
    return F.cross_entropy(outs.float().mean(0), y)


def get_encoder(name: str) -> Callable[[Tensor, int], Tensor]:
    """``"direct"`` (repeat the analog input T times), ``"poisson"`` (rate spikes) or ``"none"``.

    Returns:
        ``encode(x [B, ...], T) -> [T, B, ...]``; ``"none"`` passes already time-first data through.
    """
    from spikekit import encoding

    if name == "direct":
        return encoding.direct
    if name == "poisson":
        return lambda x, T: encoding.poisson(x, T)  # global RNG: it is checkpointed
    if name == "none":
        return lambda x, T: x
    raise ValueError(f"unknown encoder {name!r}; expected one of direct, poisson, none")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; with ``deterministic`` also force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _check_labels(outs: Tensor, y: Tensor, error: BaseException) -> None:
    # Only on the error path (it reads the labels back): name the bad label and the class count
    # instead of torch's "Target 3 is out of bounds".
    classes = int(outs.shape[-1])
    if y.numel() and y.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= classes:
            bad = hi if hi >= classes else lo
            raise ValueError(
                f"label {bad} is out of range for a model with {classes} outputs (expected labels "
                f"0..{classes - 1}); check the dataset's labels or the model's num_classes"
            ) from error


class Classifier(nn.Module):
    """A spiking classifier: encoder, model ``[T, B, ...] -> [T, B, C]`` and a loss on the outputs.

    Args:
        model: maps ``[T, B, *input]`` to ``[T, B, num_classes]``.
        T: time steps the encoder produces.
        encoder: ``"direct"``, ``"poisson"``, ``"none"`` (data already ``[T, B, ...]``) or a
            callable ``(x, T) -> xs``.
        criterion: ``criterion(outs [T, B, C], y [B]) -> loss``; default
            :func:`rate_cross_entropy`. Any snntorch-style loss on ``[T, B, C]`` fits.

    Example:
        >>> import torch, spikekit as spk
        >>> net = torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Linear(4, 3), spk.LIF())
        >>> clf = Classifier(net, T=5)
        >>> out = clf.step((torch.rand(2, 1, 2, 2), torch.tensor([0, 2])))
        >>> sorted(out), out["n"]
        (['acc', 'loss', 'n'], 2)
    """

    def __init__(
        self,
        model: nn.Module,
        T: int,
        encoder: str | Callable[[Tensor, int], Tensor] = "direct",
        criterion: Criterion | None = None,
    ) -> None:
        super().__init__()
        if not (isinstance(T, int) and T > 0):
            raise ValueError(f"T must be a positive int, got {T!r}")
        self.model = model
        self.T = T
        self.encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
        self.criterion = criterion or rate_cross_entropy

    def encode(self, x: Tensor) -> Tensor:
        """``[B, ...]`` -> ``[T, B, ...]`` (identity for time-first data)."""
        return self.encoder(x, self.T)

    def forward(self, xs: Tensor) -> Tensor:
        """Model outputs ``[T, B, C]`` for already encoded ``xs`` ``[T, B, ...]``."""
        return self.model(xs)

    def metrics(self, outs: Tensor, y: Tensor) -> dict[str, Any]:
        """``{"loss", "acc", "n"}`` for outputs ``[T, B, C]`` and labels ``[B]``."""
        try:
            loss = self.criterion(outs, y)
        except (IndexError, RuntimeError) as e:
            _check_labels(outs, y, e)
            raise
        pred = outs.detach().float().mean(0).argmax(-1)
        return {"loss": loss, "acc": (pred == y).float().mean(), "n": int(y.shape[0])}

    def step(self, batch: tuple[Tensor, Tensor]) -> dict[str, Any]:
        """Loss and metrics of one batch ``(x, y)``: ``{"loss": tensor, "acc": tensor, "n": int}``."""
        x, y = batch
        return self.metrics(self(self.encode(x)), y)


class Trainer:
    """Runs a :class:`Classifier`: epochs, evaluation, logging, checkpoints, Ctrl-C, DDP.

    Args:
        classifier: the :class:`Classifier`.
        optimizer: a torch optimiser over ``classifier.parameters()``.
        train_loader: training batches ``(x, y)``.
        test_loader: evaluation batches, or ``None``.
        scheduler: LR scheduler stepped once per epoch, or ``None``.
        clip_grad: max global gradient norm, or ``None`` (with fp16 the gradients are unscaled first).
        bf16: run forward and loss under ``torch.autocast(dtype=bfloat16)``; the same as
            ``precision="bf16"`` (kept for existing callers).
        tbptt: truncated BPTT window ``k`` (update and detach every ``k`` steps); ``None`` is full BPTT.
        out_dir: where ``metrics.csv``, TensorBoard events and checkpoints go (``None``: nowhere).
            TensorBoard gets the epoch metrics, the configuration (HParams) and each spiking
            layer's activity on the first test batch (see :class:`MetricsLogger`).
        progress: show a progress bar (tqdm if installed, else one line per epoch).
        config: plain-data run configuration stored in checkpoints.
        callbacks: objects with optional ``on_batch_end(trainer, info)`` / ``on_epoch_end(trainer, row)``.
        device: torch device (see :func:`resolve_device` for ``"auto"``).
        max_batches: stop each training epoch after this many batches (smoke tests, quick looks).
        precision: ``"fp32"`` (default), ``"bf16"`` (autocast, no scaling) or ``"fp16"`` (autocast
            and a ``torch.amp.GradScaler``, whose state is checkpointed).
        model_spec: plain-data description of the model (see
            :func:`spikekit.train.load.model_spec`), stored in checkpoints so that
            :func:`spikekit.load_model` can rebuild the model from the file alone; ``None`` for a
            model built in Python (its checkpoints then hold the weights only).

    Under an initialised torch.distributed group the classifier is wrapped in
    ``DistributedDataParallel`` and only rank 0 logs and writes checkpoints.

    The per-batch path never waits for the device: running loss/accuracy sums stay on the device
    and are read once per epoch (and at most once a second for a progress bar on an accelerator).
    """

    def __init__(
        self,
        classifier: Classifier,
        optimizer: torch.optim.Optimizer,
        train_loader: Iterable[Any],
        test_loader: Iterable[Any] | None = None,
        *,
        scheduler: Any = None,
        clip_grad: float | None = None,
        bf16: bool = False,
        tbptt: int | None = None,
        out_dir: str | None = None,
        progress: bool = True,
        config: dict[str, Any] | None = None,
        callbacks: Iterable[Any] = (),
        device: str | torch.device = "cpu",
        max_batches: int | None = None,
        precision: str | None = None,
        model_spec: dict[str, Any] | None = None,
    ) -> None:
        import torch.distributed as dist

        if tbptt is not None and tbptt <= 0:
            raise ValueError(f"tbptt must be a positive number of steps or None, got {tbptt}")
        if precision is None:
            precision = "bf16" if bf16 else "fp32"
        elif bf16 and precision != "bf16":
            raise ValueError(f"bf16=True contradicts precision={precision!r}; give one of them")
        device = resolve_device(str(device)) if str(device) == "auto" else device
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            # DDP's device_ids and the recorded config need one GPU, not "whichever is current".
            self.device = torch.device("cuda", torch.cuda.current_device())
        check_precision(precision, self.device.type)
        self.precision = precision
        self.classifier = classifier
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.scheduler = scheduler
        self.clip_grad = clip_grad
        self.bf16 = precision == "bf16"
        self.tbptt = tbptt
        self.out_dir = out_dir
        self.progress = progress
        self.config = dict(config or {})
        self.model_spec = None if model_spec is None else dict(model_spec)
        self.callbacks = list(callbacks)
        self.max_batches = max_batches
        # Disabled (fp32, bf16) it passes the loss and the step straight through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.net: nn.Module = classifier
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                classifier, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        # Position and running sums, so an interrupted epoch resumes exactly where it stopped.
        # float64 keeps the sums what Python floats gave before they moved to the device (MPS has
        # no float64).
        self._sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self.epoch = 0
        self.batch_idx = 0
        # loss * n, correct, n, non-finite-loss batches, first such batch + 1, non-finite-state
        # batches, first such batch + 1
        self._sums = self._zero_sums()
        self.history: list[dict[str, float]] = []
        self.best_acc = -1.0
        self.interrupted = False
        self.stop_signal: str | None = None  # "SIGINT" / "SIGTERM" once asked to stop by a signal
        self._bad: tuple[int, int] = (0, 0)  # from the last epoch read: non-finite batches, first + 1
        self._bad_state: tuple[int, int] = (0, 0)  # the same for a neuron state gone non-finite
        self._state_paths: list[str] = []  # the carried state tensors checked after each batch
        self._state_bad: Tensor | None = None  # per path: non-finite in some batch of this epoch
        self._saved: str | None = None  # last checkpoint this trainer wrote (or resumed from)
        self._logged = 0  # history rows already in the TensorBoard log (a resumed run's earlier epochs)
        self._stop = False  # asked for here (Ctrl-C)
        self._stop_agreed = False  # under DDP: every rank has seen some rank ask
        self._vote: Any = None  # the in-flight stop vote under DDP
        self._vote_buf = torch.zeros(1, dtype=torch.uint8)
        self._vote_group = _cpu_group() if self.distributed else None
        self._logger: Any = None
        self._first_x: Tensor | None = None  # inputs of the first training batch (activity logging)

    # ------------------------------------------------------------------ one batch
    def _zero_sums(self) -> Tensor:
        return torch.zeros(7, dtype=self._sum_dtype, device=self.device)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def _update(self, loss: Tensor, sync: bool = False) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if sync:
            self._average_gradients()
        if self.clip_grad is not None:
            # The clip threshold is in true gradient units, not fp16-scaled ones.
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.classifier.parameters(), self.clip_grad)
        # With fp16 this skips the step when a gradient overflowed (GradScaler reads that flag
        # on the host: the one sync fp16 needs unless the optimiser is a fused one).
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _average_gradients(self) -> None:
        # Truncated BPTT runs several forwards per backward, which DDP's hooks do not allow;
        # that path bypasses DDP and averages the gradients over the ranks here instead.
        import torch.distributed as dist

        world = dist.get_world_size()
        for p in self.classifier.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world

    def _train_batch(self, x: Tensor, y: Tensor) -> dict[str, Any]:
        clf = self.classifier
        xs = clf.encode(x)
        if self.tbptt is None:
            with self._autocast():
                info = clf.metrics(self.net(xs), y)
            self._update(info["loss"])
            return info
        # Truncated BPTT: step through time carrying state, update every k steps, cut the graph.
        T, k = xs.shape[0], self.tbptt
        outs_all: list[Tensor] = []
        loss_sum = torch.zeros((), dtype=self._sum_dtype, device=self.device)
        with spk.stepwise(clf.model):
            for start in range(0, T, k):
                with self._autocast():
                    # inside stepwise one call is one time step [B, ...]
                    outs = torch.stack([clf(xs[t]) for t in range(start, min(start + k, T))])
                    loss = clf.criterion(outs, y) * (outs.shape[0] / T)
                self._update(loss, sync=self.distributed)
                spk.detach_state(clf.model)
                outs_all.append(outs.detach())
                loss_sum += loss.detach().to(self._sum_dtype)
        info = clf.metrics(torch.cat(outs_all), y)
        info["loss"] = loss_sum.float()
        return info

    # ------------------------------------------------------------------ epochs
    def _batches(self, loader: Iterable[Any], desc: str) -> Iterator[Any]:
        if self.progress and self.rank == 0 and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
                self._bar = bar
                yield from bar
                bar.close()
                self._bar = None
                return
        self._bar = None
        yield from loader

    def _stopping(self) -> bool:
        # Under DDP only the agreed flag may decide anything, else ranks part ways and hang.
        return self._stop_agreed if self.distributed else self._stop

    def _should_stop(self) -> bool:
        # A single process just reads its flag. Under DDP every rank must stop at the same batch
        # (else the others hang in all-reduce), so the ranks vote: each call waits for the vote
        # started one batch earlier and starts the next one. The vote is a uint8 on the CPU over
        # gloo, so it never waits for the GPU, and it is asynchronous, so the hosts only meet
        # once per batch where DDP already makes them meet. A Ctrl-C stops one batch later.
        if not self.distributed:
            return self._stop
        import torch.distributed as dist

        if self._collect_vote():
            return True
        self._vote_buf.fill_(int(self._stop))
        self._vote = dist.all_reduce(
            self._vote_buf, op=dist.ReduceOp.MAX, group=self._vote_group, async_op=True
        )
        return False

    def _collect_vote(self) -> bool:
        # Wait for the in-flight vote (if any); True once any rank has asked to stop.
        if self._vote is not None:
            self._vote.wait()
            self._vote = None
            if self._vote_buf[0]:  # a CPU tensor: no device sync
                self._stop_agreed = True
        return self._stop_agreed

    def train_epoch(self) -> dict[str, float]:
        """Run (the rest of) one training epoch; returns ``{"loss", "acc", "n"}`` averaged over it."""
        self.classifier.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        batches = iter(self._batches(self.train_loader, f"epoch {self.epoch + 1}"))
        if self.batch_idx > 0:
            # Skip what a resumed run already trained. Building those batches may draw from the
            # RNG (random augmentation in the collate), so put back the checkpointed RNG after.
            saved = rng_state(self.device)
            for k in range(self.batch_idx):
                try:
                    next(batches)
                except StopIteration:
                    raise ValueError(
                        f"the checkpoint's position (epoch {self.epoch + 1}, batch {self.batch_idx}) is past "
                        f"the end of this run's epoch ({k} batches); it was written for other data or "
                        f"another batch size"
                    ) from None
            set_rng_state(saved, self.device)

        def done() -> bool:
            return self.max_batches is not None and self.batch_idx >= self.max_batches

        # Stop checks come after a batch, never between building the next batch and training
        # on it: building may draw from the RNG, and the checkpoint must not include that draw.
        if self._should_stop() or done():
            return self._end_epoch()
        shown = -math.inf
        for i, (x, y) in enumerate(batches, start=self.batch_idx):
            # Pinned host batches (CUDA loaders) copy while the previous step still runs.
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self._first_x is None and self.test_loader is None:
                self._first_x = x.detach()  # TensorBoard's activity input when there is no test set
            with spk.keep_state(self.classifier.model):
                info = self._train_batch(x, y)
                self._check_state(i)
            self._accumulate(self._sums, info, batch=i)
            self.batch_idx = i + 1
            if self._bar is not None and (self.device.type == "cpu" or time.monotonic() - shown >= 1.0):
                # Reading the sums waits for the device, so off the CPU the bar's numbers
                # refresh once a second instead of every batch.
                shown = time.monotonic()
                loss, acc, seen = self._sums[:3].tolist()
                self._bar.set_postfix(loss=f"{loss / seen:.3f}", acc=f"{acc / seen:.3f}")
            for cb in self.callbacks:
                if hasattr(cb, "on_batch_end"):
                    cb.on_batch_end(self, info)
            if self._should_stop() or done():
                break
        return self._end_epoch()

    def _check_state(self, batch: int) -> None:
        # A neuron whose membrane went NaN outputs finite zeros, so the loss cannot show it: flag
        # the carried final states of this batch on the device (read with the sums per epoch).
        flags = finite_flags(self.classifier.model, states_only=True)
        if not flags:
            return
        bad = ~torch.stack([f for _, f in flags]).to(self.device)
        paths = [p for p, _ in flags]
        if self._state_bad is None or paths != self._state_paths:
            self._state_paths, self._state_bad = paths, torch.zeros_like(bad)
        self._state_bad |= bad
        any_bad = bad.any().to(self._sum_dtype)
        self._sums[5] += any_bad
        self._sums[6] = torch.where((self._sums[6] == 0) & (any_bad > 0), float(batch + 1), self._sums[6])

    def _accumulate(self, sums: Tensor, info: dict[str, Any], batch: int | None = None) -> None:
        # In place on the device, no read back: loss * n, correct, n (a Python int, so the
        # count costs no copy). A training batch also counts a non-finite loss and keeps the
        # first such batch, on the device too; they are read with the sums, once per epoch.
        n = info["n"]
        vals = [
            torch.as_tensor(info[k], device=self.device).detach().to(self._sum_dtype) for k in ("loss", "acc")
        ]
        sums[:2] += torch.stack(vals) * n
        sums[2] += n
        if batch is not None:
            bad = (~torch.isfinite(vals[0])).to(self._sum_dtype)
            sums[3] += bad
            sums[4] = torch.where((sums[4] == 0) & (bad > 0), float(batch + 1), sums[4])

    def _end_epoch(self) -> dict[str, float]:
        # No vote may stay in flight past here: fit() decides on the agreed flag next.
        self._collect_vote()
        return self._epoch_means()

    def _epoch_means(self) -> dict[str, float]:
        if self.distributed:
            import torch.distributed as dist

            # Every rank must stop on a non-finite value any rank saw (else the others hang in
            # the next collective): the flags become the largest over the ranks.
            flags = self._sums[3:].clone()
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            self._sums[3:] = flags
        loss, acc, seen, bad, first, bad_state, first_state = self._sums.tolist()  # once per epoch
        self._bad = (int(bad), int(first))
        self._bad_state = (int(bad_state), int(first_state))
        n = max(seen, 1.0)
        return {"loss": loss / n, "acc": acc / n, "n": int(seen)}

    @torch.no_grad()
    def test(self, loader: Iterable[Any] | None = None) -> dict[str, float]:
        """Evaluate on ``loader`` (default the test loader); returns ``{"loss", "acc", "n"}`` over all ranks."""
        loader = self.test_loader if loader is None else loader
        if loader is None:
            raise ValueError("Trainer.test: no test loader was given")
        was_training = self.classifier.training
        self.classifier.eval()
        sums = self._zero_sums()
        for x, y in self._batches(loader, "test"):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                info = self.classifier.metrics(self.classifier(self.classifier.encode(x)), y)
            self._accumulate(sums, info)
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(sums)  # on the device: nccl needs GPU tensors, gloo takes CPU ones
        self.classifier.train(was_training)
        loss, acc, seen = sums[:3].tolist()
        n = max(seen, 1.0)
        return {"loss": loss / n, "acc": acc / n, "n": int(seen)}

    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        # Ctrl-C (SIGINT) or SIGTERM: finish the current batch, save, return. Further signals only
        # repeat the notice: raising at once would land anywhere (after the next batch drew
        # random numbers, mid optimiser step), and the saved position would no longer be exact.
        # To abandon a run without saving, use SIGKILL (kill -9).
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stop:
                if self.rank == 0:
                    print(f"\n{name}: already stopping at the end of this batch (kill -9 abandons the run)",
                          file=sys.stderr, flush=True)  # fmt: skip
                return
            self._stop = True
            self.stop_signal = name
            if self.rank == 0:
                when = "the next batch (the same one on every process)" if self.distributed else "this batch"
                print(
                    f"\n{name}: stopping after {when} and saving a checkpoint...", file=sys.stderr, flush=True
                )

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)

    def _nonfinite_problem(self) -> str | None:
        """Why the run must stop (non-finite loss, weights or neuron state), or ``None``.

        Reads the device once (the epoch's flags were read with its sums); names the epoch, the
        first batch with a non-finite loss, the first parameters (module order) that are not
        finite, which is the layer where the blow-up reached the weights, and the neuron states
        that went non-finite (checked after every batch, see :func:`spikekit.modes.finite_flags`).
        """
        bad, first = self._bad
        bad_state, first_state = self._bad_state
        params = [(n, p) for n, p in self.classifier.model.named_parameters()]
        finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).tolist() if params else []
        broken = [n for (n, _), ok in zip(params, finite, strict=True) if not ok]
        if not bad and not broken and not bad_state:
            return None
        where = f"epoch {self.epoch + 1}"
        parts = []
        if bad:
            parts.append(f"non-finite loss in {where}, batch {first} (in {bad} batch(es) of the epoch)")
        elif broken:
            parts.append(f"non-finite weights after {where}, batch {self.batch_idx}")
        if broken:
            more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
            parts.append(f"first non-finite parameter: {broken[0]}{more}")
        elif bad:
            parts.append("the weights are still finite")
        if bad_state:
            names = []
            if self._state_bad is not None:
                flags = self._state_bad.tolist()
                names = [p for p, f in zip(self._state_paths, flags, strict=True) if f]
            layer = f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""
            parts.append(
                f"non-finite neuron state{layer} in {where}, batch {first_state} (in {bad_state} batch(es)); "
                f"a NaN membrane outputs no spikes, so the loss does not show it: look for NaN or inf "
                f"in the inputs"
            )
        return "; ".join(parts)

    def _stop_nonfinite(self, problem: str) -> None:
        kept = self._saved or (
            os.path.join(self.out_dir, "last.pt")
            if self.out_dir and os.path.isfile(os.path.join(self.out_dir, "last.pt"))
            else None
        )
        keep = f"kept the last good checkpoint {kept}" if kept else "no checkpoint was written"
        raise NonFiniteError(
            f"{problem}; stopped without saving ({keep}). Try a lower --lr, --clip-grad or fp32"
        )

    def fit(self, epochs: int) -> dict[str, Any]:
        """Train until ``epochs`` epochs are done (counting epochs of a resumed run).

        Returns:
            Info dict: ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``,
            ``best_acc``, ``time``, ``interrupted``, ``signal`` (``"SIGINT"``/``"SIGTERM"``
            or ``None``) and ``history`` (one row per epoch).

        Raises:
            NonFiniteError: a loss, a weight or a neuron's carried state became NaN or
                infinite. Flagged on the device every batch, read once per epoch (and before any
                save); nothing non-finite is written over ``last.pt``/``best.pt``.
        """
        if epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {epochs}")
        t0 = time.perf_counter()
        self._stop = self._stop_agreed = False
        problem = None
        try:
            with self._sigint():
                while self.epoch < epochs:
                    tr = self.train_epoch()
                    problem = self._nonfinite_problem()
                    if problem or self._stopping():
                        break
                    te = self.test() if self.test_loader is not None else {"loss": math.nan, "acc": math.nan}
                    row = {
                        "epoch": self.epoch + 1,
                        "train_loss": tr["loss"],
                        "train_acc": tr["acc"],
                        "test_loss": te["loss"],
                        "test_acc": te["acc"],
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "time": time.perf_counter() - t0,
                    }
                    self.epoch += 1
                    self.batch_idx = 0
                    self._sums = self._zero_sums()
                    self._state_bad = None
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.history.append(row)
                    improved = not math.isnan(row["test_acc"]) and row["test_acc"] > self.best_acc
                    if improved:
                        self.best_acc = row["test_acc"]
                    self._log_epoch(row)
                    self._save("last.pt")
                    if improved:
                        self._save("best.pt")
                    for cb in self.callbacks:
                        if hasattr(cb, "on_epoch_end"):
                            cb.on_epoch_end(self, row)
                if problem is None and self._stopping():
                    self.interrupted = True
                    problem = self._nonfinite_problem()
                    path = None if problem else self._save("last.pt")
                    if self.rank == 0 and path:
                        print(
                            f"interrupted ({self.stop_signal or 'stop requested'}) in epoch {self.epoch + 1} at "
                            f"batch {self.batch_idx}: checkpoint saved to {path} (resume with --resume)",
                            file=sys.stderr,
                        )
        except KeyboardInterrupt:
            # Raised by a callback or code outside the handler: still stop at this batch boundary.
            self._stop = self._stop_agreed = True
            self.interrupted = True
            problem = self._nonfinite_problem()
            path = None if problem else self._save("last.pt")
            if self.rank == 0 and path:
                print(f"interrupted in epoch {self.epoch + 1}: checkpoint saved to {path} (resume with --resume)",
                      file=sys.stderr)  # fmt: skip
        finally:
            if self._logger is not None:
                self._logger.close()
                self._logger = None
        if problem:
            self._stop_nonfinite(problem)
        last = self.history[-1] if self.history else {}
        return {
            "epoch": self.epoch,
            "train_loss": last.get("train_loss", math.nan),
            "train_acc": last.get("train_acc", math.nan),
            "test_loss": last.get("test_loss", math.nan),
            "test_acc": last.get("test_acc", math.nan),
            "best_acc": self.best_acc,
            "time": time.perf_counter() - t0,
            "interrupted": self.interrupted,
            "signal": self.stop_signal,
            "history": list(self.history),
        }

    # ------------------------------------------------------------------ logging & checkpoints
    def _log_epoch(self, row: dict[str, float]) -> None:
        if self.rank != 0:
            return
        if self.progress:
            print(
                f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f} acc {row['train_acc'] * 100:6.2f}%  "
                f"test loss {row['test_loss']:.4f} acc {row['test_acc'] * 100:6.2f}%  ({row['time']:.1f} s)",
                flush=True,
            )
        if self.out_dir is not None:
            if self._logger is None:
                # A resumed run's earlier epochs are already in tb/: start_epoch keeps them from
                # being written twice (the CSV is rewritten whole anyway).
                self._logger = MetricsLogger(self.out_dir, hparams=self.config, start_epoch=self._logged)
                watched = self._watch_batch()
                if watched is not None:
                    self._logger.watch(self.classifier.model, watched)
            self._logger.log(self.history)

    def _watch_batch(self) -> Tensor | None:
        """The first evaluation batch (else this process's first training batch), encoded.

        TensorBoard's activity summaries run on it every epoch. Taken with the RNG forked:
        opening a loader and a stochastic encoder may both draw random numbers, and a resumed
        run must draw exactly what the uninterrupted one drew.
        """
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            x = self._first_x
            if self.test_loader is not None:
                try:
                    x, _ = next(iter(self.test_loader))
                except (StopIteration, TypeError, ValueError):
                    pass
            if x is None:
                return None
            # Sliced after encoding: only the encoded batch is sure to be time-first.
            return self.classifier.encode(x.to(self.device))[:, : MetricsLogger.activity_samples]

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as plain data (loadable with ``weights_only=True``)."""
        return {
            "format": "spikekit-train/1",
            "model": self.classifier.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": type(self.optimizer).__name__,
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_idx": self.batch_idx,
            "sums": self._sums[:3].tolist(),
            "rng": rng_state(self.device),
            "precision": self.precision,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "history": list(self.history),
            "best_acc": self.best_acc,
            "config": self.config,
            "model_spec": self.model_spec,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (model, optimiser, scheduler, fp16 scaler, RNG, position, history).

        The run's own precision and device win over the checkpoint's: a fp16 scaler state is
        restored only into a fp16 run (another run starts a fresh scale), and a checkpoint
        written on a GPU loads onto the CPU (its GPU RNG state is then unused).

        Args:
            ckpt: a dict from :meth:`state_dict`.

        Raises:
            ValueError: not a training checkpoint, an entry missing, its model does not fit this
                run's (a neuron saved with other options, a missing or mis-sized tensor), its
                optimiser state is another optimiser's, or its position is past this run's
                epoch; each named.
        """
        if ckpt.get("format") != "spikekit-train/1":
            raise ValueError(f"not a spikekit training checkpoint (format {ckpt.get('format')!r})")
        missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
        if missing:
            raise ValueError(
                f"the checkpoint is incomplete: it has no {', '.join(repr(k) for k in missing)} entry "
                f"(an exact resume needs {', '.join(CHECKPOINT_KEYS)})"
            )
        self._check_optimizer(ckpt)
        try:
            self.classifier.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            # torch puts each problem on its own line under a header; one line names them all.
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise ValueError(
                "the checkpoint's model does not fit this run's model: " + "; ".join(lines[1:] or lines)
            ) from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt["scheduler"] is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.batch_idx = int(ckpt["epoch"]), int(ckpt["batch_idx"])
        per_epoch = self._epoch_length()
        if self.batch_idx < 0 or (per_epoch is not None and self.batch_idx > per_epoch):
            raise ValueError(
                f"the checkpoint's position (epoch {self.epoch + 1}, batch {self.batch_idx}) is past the end "
                f"of this run's epoch ({per_epoch} batches); it was written for other data, another "
                f"batch size or another --max-batches"
            )
        sums = [float(v) for v in ckpt["sums"]][:3]
        self._sums = self._zero_sums()
        self._sums[:3] = torch.tensor(sums, dtype=self._sum_dtype)
        self._logged = len(ckpt["history"])
        if self.scaler.is_enabled() and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history = [dict(r) for r in ckpt["history"]]
        self.best_acc = float(ckpt["best_acc"])
        set_rng_state(ckpt["rng"], self.device)

    def _epoch_length(self) -> int | None:
        try:
            n = len(self.train_loader)  # type: ignore[arg-type]
        except TypeError:
            return None
        return n if self.max_batches is None else min(n, self.max_batches)

    def _check_optimizer(self, ckpt: dict[str, Any]) -> None:
        # torch's own load fails later with KeyError: 'momentum' (or silently mixes states):
        # compare the optimiser's class, or for older checkpoints its hyperparameter names.
        mine = type(self.optimizer).__name__
        theirs = ckpt.get("optimizer_class")
        groups = (ckpt.get("optimizer") or {}).get("param_groups") or [{}]
        mine_keys = set(self.optimizer.param_groups[0]) - {"params", "initial_lr"}
        their_keys = set(groups[0]) - {"params", "initial_lr"}
        if theirs is not None and theirs != mine:
            raise ValueError(f"the checkpoint's optimizer state is from {theirs}; this run uses {mine}")
        if theirs is None and mine_keys - their_keys:
            lacks = ", ".join(sorted(mine_keys - their_keys))
            raise ValueError(
                f"the checkpoint's optimizer state is from another optimizer than this run's {mine} "
                f"(it has no {lacks})"
            )

    def resume(self, path: str) -> None:
        """Load a checkpoint written by this trainer (safely, ``weights_only=True``) and continue from it."""
        self.load_state_dict(load_checkpoint(path))

    def _save(self, name: str) -> str | None:
        if self.out_dir is None or self.rank != 0:
            return None
        path = save_checkpoint(self.state_dict(), os.path.join(self.out_dir, name))
        if name == "last.pt":
            self._saved = path
        return path


def bptt_epoch(
    net: nn.Module,
    loader: Iterable[Any],
    num_steps: int,
    optimizer: torch.optim.Optimizer,
    criterion: Criterion | None = None,
    *,
    encoder: str | Callable[[Tensor, int], Tensor] = "direct",
    tbptt: int | None = None,
    clip_grad: float | None = None,
    bf16: bool = False,
    epoch: int | None = None,
    device: str | torch.device = "cpu",
    precision: str | None = None,
) -> dict[str, float]:
    """One epoch of backpropagation through time in one call (snntorch ``backprop.BPTT``).

    Args:
        net: model ``[T, B, ...] -> [T, B, C]``.
        loader: batches ``(x, y)``.
        num_steps: time steps ``T`` the encoder produces.
        optimizer: optimiser over ``net.parameters()``.
        criterion: ``criterion(outs [T, B, C], y) -> loss`` (default :func:`rate_cross_entropy`).
        encoder: ``"direct"``, ``"poisson"``, ``"none"`` or a callable ``(x, T) -> xs``.
        tbptt: truncated BPTT window, ``None`` for full BPTT.
        clip_grad: gradient-norm clip. bf16: bf16 autocast (same as ``precision="bf16"``).
        epoch: epoch number for a shuffling sampler's ``set_epoch``.
        device: torch device.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :class:`Trainer`).

    Returns:
        ``{"loss", "acc", "n"}`` averaged over the epoch.
    """
    trainer = Trainer(
        Classifier(net, num_steps, encoder, criterion),
        optimizer,
        loader,
        clip_grad=clip_grad,
        bf16=bf16,
        tbptt=tbptt,
        progress=False,
        device=device,
        precision=precision,
    )
    trainer.epoch = epoch or 0
    if epoch is None and hasattr(getattr(loader, "sampler", None), "set_epoch"):
        trainer.epoch = getattr(loader.sampler, "epoch", 0)  # leave the caller's sampler epoch as it is
    return trainer.train_epoch()


_CPU_GROUP: tuple[Any, Any] | None = None  # (default group it was made for, gloo group)


def _cpu_group() -> Any:
    """A gloo group over every rank, for small host-side collectives (the stop vote).

    ``None`` (the default group) when that already is gloo; otherwise (nccl) one extra gloo
    group, made once per default group, since every rank must take part in making it.
    """
    import torch.distributed as dist

    global _CPU_GROUP
    if dist.get_backend() == "gloo":
        return None
    if _CPU_GROUP is None or _CPU_GROUP[0] is not dist.group.WORLD:
        _CPU_GROUP = (dist.group.WORLD, dist.new_group(backend="gloo"))
    return _CPU_GROUP[1]
