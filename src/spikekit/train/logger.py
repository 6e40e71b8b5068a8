"""Per-epoch metrics to CSV (rewritten atomically) and TensorBoard (if installed)."""

from __future__ import annotations

import csv
import os
import warnings
from typing import Any

__all__ = ["MetricsLogger", "write_csv"]


def write_csv(rows: list[dict[str, Any]], path: str) -> str:
    """Write ``rows`` (dicts with the same keys) as CSV via a temp file and ``os.replace``."""
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    os.replace(tmp, path)
    return path


class MetricsLogger:
    """Writes the run history to ``out_dir/metrics.csv`` and scalars to ``out_dir/tb/``.

    The CSV is rebuilt from the full history each epoch, so a resumed run's file equals an
    uninterrupted run's. TensorBoard (``torch.utils.tensorboard``) is optional.
    """

    def __init__(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.csv_path = os.path.join(out_dir, "metrics.csv")
        self.tb_dir = os.path.join(out_dir, "tb")
        self._written = 0
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb: Any = SummaryWriter(self.tb_dir)
        except ImportError:
            warnings.warn("tensorboard is not installed: no TensorBoard events written", stacklevel=2)
            self.tb = None

    def log(self, history: list[dict[str, float]]) -> None:
        """Record ``history`` (one dict per epoch, ``epoch`` key 1-based)."""
        write_csv(history, self.csv_path)
        if self.tb is not None:
            for row in history[self._written :]:
                for k, v in row.items():
                    if k != "epoch":
                        self.tb.add_scalar(k, v, int(row["epoch"]))
            self.tb.flush()
        self._written = len(history)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
