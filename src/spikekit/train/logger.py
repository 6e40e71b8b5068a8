"""Per-epoch metrics to CSV (rewritten atomically) and TensorBoard (if installed).

TensorBoard gets, per epoch: every history column as a scalar; with :meth:`MetricsLogger.watch`
(or :meth:`MetricsLogger.log_activity`) also each spiking layer's firing rate (a scalar and a
per-neuron histogram), membrane histograms and a raster image; and once per run the
hyperparameters (HParams dashboard), linked to the ``train_*``/``test_*`` scalars.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MetricsLogger", "write_csv"]


def write_csv(rows: list[dict[str, Any]], path: str) -> str:
    """Write ``rows`` (dicts with the same keys) as CSV via a temp file and ``os.replace``.

    Args:
        rows: the rows; the first one's keys are the header.
        path: the CSV file.

    Returns:
        ``path``.
    """
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)
    return path


def _hparam_value(v: Any) -> int | float | str | bool | None:
    """A value the HParams plugin takes (numbers, strings, bools); anything else as its repr."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class MetricsLogger:
    """Writes the run history to ``out_dir/metrics.csv`` and TensorBoard events to ``out_dir/tb/``.

    The CSV is rebuilt from the full history each epoch, so a resumed run's file equals an
    uninterrupted run's. TensorBoard (``torch.utils.tensorboard``) is optional.

    Resuming never gives TensorBoard two points for one epoch: rows before ``start_epoch``
    (or the ``_written`` count the trainer sets) are not written again, and the writer is
    opened with ``purge_step`` at the first epoch it writes, so TensorBoard drops whatever an
    earlier, longer attempt logged from that epoch on (a resume from ``best.pt``, or after a
    crash).

    Args:
        out_dir: the run folder.
        hparams: the run's configuration, shown in TensorBoard's HParams dashboard (written
            once, by a run that starts at epoch 1). Non-scalar values are written as text.
        start_epoch: epochs already logged by an earlier attempt of this run (0: none).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     log = MetricsLogger(d, hparams={"lr": 0.1})
        ...     log.log([{"epoch": 1, "train_loss": 0.5}])
        ...     log.close()
        ...     open(os.path.join(d, "metrics.csv")).read().split()
        ['epoch,train_loss', '1,0.5']
    """

    def __init__(
        self, out_dir: str, *, hparams: Mapping[str, Any] | None = None, start_epoch: int = 0
    ) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.csv_path = os.path.join(out_dir, "metrics.csv")
        self.tb_dir = os.path.join(out_dir, "tb")
        self._written = int(start_epoch)  # history rows already in tb/ (the trainer may set it)
        self.hparams = dict(hparams or {})
        self.tb: Any = None
        self._tb_missing = False
        self._first_step: int | None = None  # steps before this belong to an earlier attempt
        self._watched: tuple[nn.Module, Tensor] | None = None

    # ------------------------------------------------------------------ the writer
    def _writer(self, first_step: int) -> Any:
        """The SummaryWriter, opened on first use with ``purge_step=first_step`` (``None``: no tensorboard)."""
        if self.tb is None and not self._tb_missing:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed: no TensorBoard events written", stacklevel=3)
                self._tb_missing = True
                return None
            self._first_step = first_step
            # purge_step: TensorBoard discards events at steps >= first_step written before this
            # point (an earlier attempt that got further than the checkpoint we resumed from).
            self.tb = SummaryWriter(self.tb_dir, purge_step=first_step if first_step > 1 else None)
            if first_step <= 1 and self.hparams:
                self._write_hparams()
        return self.tb

    def _write_hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        hp = {k: _hparam_value(v) for k, v in self.hparams.items()}
        hp = {k: v for k, v in hp.items() if v is not None}
        # The metric names only link the dashboard to the scalars this logger writes per epoch.
        metrics = dict.fromkeys(("test_acc", "test_loss", "train_acc", "train_loss"), 0.0)
        for summary in hparams(hp, metrics):
            self.tb.file_writer.add_summary(summary)

    # ------------------------------------------------------------------ per epoch
    def log(self, history: list[dict[str, float]]) -> None:
        """Record ``history`` (one dict per epoch, ``epoch`` key 1-based).

        Writes the CSV, the new rows' scalars, and the watched model's activity (see
        :meth:`watch`) at the last row's epoch.

        Args:
            history: every epoch so far (the CSV is rewritten from it).
        """
        write_csv(history, self.csv_path)
        new = history[self._written :]
        if new:
            tb = self._writer(int(new[0]["epoch"]))
            if tb is not None:
                for row in new:
                    for k, v in row.items():
                        if k != "epoch":
                            tb.add_scalar(k, v, int(row["epoch"]))
                if self._watched is not None:
                    self.log_activity(*self._watched, int(new[-1]["epoch"]))
                tb.flush()
        self._written = len(history)

    def watch(self, model: nn.Module, xs: Tensor) -> None:
        """Log ``model``'s activity on ``xs`` at every later :meth:`log` (once per epoch).

        Args:
            model: the network (called as ``model(xs)``).
            xs: a fixed input batch ``[T, B, ...]`` (e.g. the first test batch, encoded); at most
                :attr:`activity_samples` samples of it are used.
        """
        self._watched = (model, xs)

    #: samples of the watched batch used for the activity summaries
    activity_samples = 32

    @torch.no_grad()
    def log_activity(
        self, model: nn.Module, xs: Tensor, step: int, *, max_raster_neurons: int = 128
    ) -> dict[str, float]:
        """Firing rates, membrane histograms and rasters of ``model`` on ``xs`` at ``step``.

        For each spiking neuron layer (``name`` as in :func:`spikekit.neurons_of`):

        - ``activity/rate/<name>``: mean spikes per neuron per step (scalar);
        - ``activity/rate_per_neuron/<name>``: histogram of each neuron's rate;
        - ``activity/raster/<name>``: raster image of the first sample, the most active
          ``max_raster_neurons`` neurons (rows) over time (columns);

        and for every neuron layer with a membrane ``v``: ``activity/membrane/<name>`` (histogram).
        The model runs in eval mode (restored after). A step before the first one this logger
        wrote (an earlier attempt's epoch, after a resume) is skipped.

        Args:
            model: the network.
            xs: its input ``[T, B, ...]``; the first :attr:`activity_samples` samples are used.
            step: the epoch.
            max_raster_neurons: rows of each raster image.

        Returns:
            ``{layer name: firing rate}`` of the spiking layers (empty when nothing was written).
        """
        tb = self._writer(step)
        if tb is None or (self._first_step is not None and step < self._first_step):
            return {}
        import spikekit as spk
        from spikekit.viz import raster_image, trace_sample

        # A stochastic layer must not move the training run's RNG (resumes replay it exactly).
        devices = [xs.device] if xs.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            tr = trace_sample(model, xs[:, : self.activity_samples])
        rates: dict[str, float] = {}
        for name, neuron in spk.neurons_of(model):
            if name in tr["outputs"] and neuron.options.surrogate is not None:
                z = tr["outputs"][name].float()
                rates[name] = float(z.mean())
                tb.add_scalar(f"activity/rate/{name}", rates[name], step)
                per_neuron = z.mean(dim=(0, 1)).flatten()  # time and batch
                tb.add_histogram(f"activity/rate_per_neuron/{name}", per_neuron.cpu(), step)
                img = raster_image(z[:, 0], max_neurons=max_raster_neurons)
                tb.add_image(f"activity/raster/{name}", img, step, dataformats="HW")
            state = tr["states"].get(name)
            v = getattr(state, "v", None)
            if isinstance(v, Tensor) and v.numel() and bool(torch.isfinite(v).all()):
                tb.add_histogram(f"activity/membrane/{name}", v.float().flatten().cpu(), step)
        if rates:
            tb.add_scalar("activity/rate/mean", sum(rates.values()) / len(rates), step)
        tb.flush()
        return rates

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the CSV is always complete)."""
        if self.tb is not None:
            self.tb.close()
