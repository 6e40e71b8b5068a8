"""Training: a classifier (model + encoder + loss, whose step returns a dict) and a trainer.

The split follows eve-mli: :class:`Classifier` knows *what* to compute for one batch
(``step(batch) -> {"loss", "acc", "n"}``); :class:`Trainer` knows *how* to run it (optimiser,
schedule, clipping, bf16 autocast, truncated BPTT, DDP, logging, checkpoints, Ctrl-C).
:func:`bptt_epoch` is snntorch's one-call BPTT epoch on top of both.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import spikekit as spk
from spikekit.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

__all__ = ["Classifier", "Trainer", "bptt_epoch", "rate_cross_entropy", "seed_everything", "get_encoder"]

Criterion = Callable[[Tensor, Tensor], Tensor]


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
        loss = self.criterion(outs, y)
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
        clip_grad: max global gradient norm, or ``None``.
        bf16: run forward and loss under ``torch.autocast(dtype=bfloat16)``.
        tbptt: truncated BPTT window ``k`` (update and detach every ``k`` steps); ``None`` is full BPTT.
        out_dir: where ``metrics.csv``, TensorBoard events and checkpoints go (``None``: nowhere).
        progress: show a progress bar (tqdm if installed, else one line per epoch).
        config: plain-data run configuration stored in checkpoints.
        callbacks: objects with optional ``on_batch_end(trainer, info)`` / ``on_epoch_end(trainer, row)``.
        device: torch device.
        max_batches: stop each training epoch after this many batches (smoke tests, quick looks).

    Under an initialised torch.distributed group the classifier is wrapped in
    ``DistributedDataParallel`` and only rank 0 logs and writes checkpoints.
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
    ) -> None:
        import torch.distributed as dist

        if tbptt is not None and tbptt <= 0:
            raise ValueError(f"tbptt must be a positive number of steps or None, got {tbptt}")
        self.classifier = classifier
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.scheduler = scheduler
        self.clip_grad = clip_grad
        self.bf16 = bf16
        self.tbptt = tbptt
        self.out_dir = out_dir
        self.progress = progress
        self.config = dict(config or {})
        self.callbacks = list(callbacks)
        self.device = torch.device(device)
        self.max_batches = max_batches
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.net: nn.Module = classifier
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                classifier, device_ids=None if self.device.type == "cpu" else [self.device]
            )
        # Position and running sums, so an interrupted epoch resumes exactly where it stopped.
        self.epoch = 0
        self.batch_idx = 0
        self._sums = [0.0, 0.0, 0]  # loss * n, correct, n
        self.history: list[dict[str, float]] = []
        self.best_acc = -1.0
        self.interrupted = False
        self._stop = False
        self._logger: Any = None

    # ------------------------------------------------------------------ one batch
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _update(self, loss: Tensor, sync: bool = False) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if sync:
            self._average_gradients()
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.classifier.parameters(), self.clip_grad)
        self.optimizer.step()

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
        outs_all, loss_sum = [], 0.0
        with spk.stepwise(clf.model):
            for start in range(0, T, k):
                with self._autocast():
                    outs = torch.cat([clf(xs[t : t + 1]) for t in range(start, min(start + k, T))])
                    loss = clf.criterion(outs, y) * (outs.shape[0] / T)
                self._update(loss, sync=self.distributed)
                spk.detach_state(clf.model)
                outs_all.append(outs.detach())
                loss_sum += float(loss.detach())
        info = clf.metrics(torch.cat(outs_all), y)
        info["loss"] = torch.tensor(loss_sum)
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

    def _should_stop(self) -> bool:
        # Under DDP every rank must stop at the same batch (else the others hang in all-reduce),
        # so a Ctrl-C seen by any rank is shared before each batch.
        if self.distributed:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if self._stop else 0.0], device=self.device)  # nccl needs GPU tensors
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._stop = bool(flag.item())
        return self._stop

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
            saved = rng_state()
            for _ in range(self.batch_idx):
                next(batches)
            set_rng_state(saved)

        def done() -> bool:
            return self.max_batches is not None and self.batch_idx >= self.max_batches

        # Stop checks come after a batch, never between building the next batch and training
        # on it: building may draw from the RNG, and the checkpoint must not include that draw.
        if self._should_stop() or done():
            return self._epoch_means()
        for i, (x, y) in enumerate(batches, start=self.batch_idx):
            x, y = x.to(self.device), y.to(self.device)
            info = self._train_batch(x, y)
            n = info["n"]
            self._sums[0] += float(info["loss"].detach()) * n
            self._sums[1] += float(info["acc"]) * n
            self._sums[2] += n
            self.batch_idx = i + 1
            if self._bar is not None:
                self._bar.set_postfix(
                    loss=f"{self._sums[0] / self._sums[2]:.3f}", acc=f"{self._sums[1] / self._sums[2]:.3f}"
                )
            for cb in self.callbacks:
                if hasattr(cb, "on_batch_end"):
                    cb.on_batch_end(self, info)
            if self._should_stop() or done():
                break
        return self._epoch_means()

    def _epoch_means(self) -> dict[str, float]:
        n = max(self._sums[2], 1)
        return {"loss": self._sums[0] / n, "acc": self._sums[1] / n, "n": self._sums[2]}

    @torch.no_grad()
    def test(self, loader: Iterable[Any] | None = None) -> dict[str, float]:
        """Evaluate on ``loader`` (default the test loader); returns ``{"loss", "acc", "n"}`` over all ranks."""
        loader = self.test_loader if loader is None else loader
        if loader is None:
            raise ValueError("Trainer.test: no test loader was given")
        was_training = self.classifier.training
        self.classifier.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            with self._autocast():
                info = self.classifier.metrics(self.classifier(self.classifier.encode(x)), y)
            sums += torch.tensor(
                [float(info["loss"]) * info["n"], float(info["acc"]) * info["n"], info["n"]],
                dtype=torch.float64,
            )
        if self.distributed:
            import torch.distributed as dist

            sums = sums.to(self.device)
            dist.all_reduce(sums)
            sums = sums.cpu()
        self.classifier.train(was_training)
        n = max(float(sums[2]), 1.0)
        return {"loss": float(sums[0]) / n, "acc": float(sums[1]) / n, "n": int(sums[2])}

    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        # First Ctrl-C: finish the current batch, save, return. A second one interrupts at once.
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True
            if self.rank == 0:
                print("\ninterrupt: stopping after this batch and saving a checkpoint...", file=sys.stderr)

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)

    def fit(self, epochs: int) -> dict[str, Any]:
        """Train until ``epochs`` epochs are done (counting epochs of a resumed run).

        Returns:
            Info dict: ``epoch``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``,
            ``best_acc``, ``time``, ``interrupted`` and ``history`` (one row per epoch).
        """
        if epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {epochs}")
        t0 = time.perf_counter()
        self._stop = False
        try:
            with self._sigint():
                while self.epoch < epochs:
                    tr = self.train_epoch()
                    if self._stop:
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
                    self._sums = [0.0, 0.0, 0]
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
        except KeyboardInterrupt:
            self._stop = True
        if self._stop:
            self.interrupted = True
            path = self._save("last.pt")
            if self.rank == 0 and path:
                print(
                    f"interrupted in epoch {self.epoch + 1}: checkpoint saved to {path} (resume with --resume)",
                    file=sys.stderr,
                )
        if self._logger is not None:
            self._logger.close()
            self._logger = None
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
            from spikekit.train.logger import MetricsLogger

            if self._logger is None:
                self._logger = MetricsLogger(self.out_dir)
            self._logger.log(self.history)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as plain data (loadable with ``weights_only=True``)."""
        return {
            "format": "spikekit-train/1",
            "model": self.classifier.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "epoch": self.epoch,
            "batch_idx": self.batch_idx,
            "sums": list(self._sums),
            "rng": rng_state(),
            "history": list(self.history),
            "best_acc": self.best_acc,
            "config": self.config,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (model, optimiser, scheduler, RNG, position, history)."""
        if ckpt.get("format") != "spikekit-train/1":
            raise ValueError(f"not a spikekit training checkpoint (format {ckpt.get('format')!r})")
        self.classifier.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt["scheduler"] is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.batch_idx = int(ckpt["epoch"]), int(ckpt["batch_idx"])
        self._sums = [float(ckpt["sums"][0]), float(ckpt["sums"][1]), int(ckpt["sums"][2])]
        self.history = [dict(r) for r in ckpt["history"]]
        self.best_acc = float(ckpt["best_acc"])
        set_rng_state(ckpt["rng"])

    def resume(self, path: str) -> None:
        """Load a checkpoint written by this trainer (safely, ``weights_only=True``) and continue from it."""
        self.load_state_dict(load_checkpoint(path))

    def _save(self, name: str) -> str | None:
        if self.out_dir is None or self.rank != 0:
            return None
        return save_checkpoint(self.state_dict(), os.path.join(self.out_dir, name))


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
        clip_grad: gradient-norm clip. bf16: bf16 autocast.
        epoch: epoch number for a shuffling sampler's ``set_epoch``.
        device: torch device.

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
    )
    trainer.epoch = epoch or 0
    if epoch is None and hasattr(getattr(loader, "sampler", None), "set_epoch"):
        trainer.epoch = getattr(loader.sampler, "epoch", 0)  # leave the caller's sampler epoch as it is
    return trainer.train_epoch()
