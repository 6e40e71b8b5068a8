"""Datasets and loaders: the embedded digits, torchvision image sets, tonic event sets.

All loaders shard with a ``DistributedSampler`` when a torch.distributed process group is
active. Optional packages (scikit-learn, torchvision, tonic) are imported inside the functions.
"""

from __future__ import annotations

from spikekit.data._loader import DataBundle, DatasetNotFoundError, ShardSampler, dist_info, make_loader
from spikekit.data.neuromorphic import NEUROMORPHIC, collate_frames, neuromorphic
from spikekit.data.vision import (
    VISION,
    RandomShift,
    cifar10_dataset,
    cifar100_dataset,
    digits,
    digits_arrays,
    fmnist_dataset,
    mnist_dataset,
    vision,
)

__all__ = [
    "DataBundle",
    "DatasetNotFoundError",
    "ShardSampler",
    "RandomShift",
    "dist_info",
    "make_loader",
    "digits",
    "digits_arrays",
    "vision",
    "mnist_dataset",
    "fmnist_dataset",
    "cifar10_dataset",
    "cifar100_dataset",
    "neuromorphic",
    "collate_frames",
    "load",
    "names",
]


def names() -> list[str]:
    """Every dataset name :func:`load` accepts."""
    return ["digits", *VISION, *NEUROMORPHIC]


def load(
    name: str,
    *,
    data_dir: str | None = None,
    batch_size: int = 64,
    test_batch_size: int = 256,
    T: int = 4,
    download: bool = False,
    seed: int = 0,
    augment: bool = False,
    pin_memory: bool = False,
    num_workers: int = 0,
) -> DataBundle:
    """Load a dataset by name (what the CLI uses).

    Args:
        name: one of :func:`names`.
        data_dir: directory with the files (not needed for ``"digits"``).
        batch_size: training batch size per process. test_batch_size: evaluation batch size.
        T: time bins for event datasets (ignored for static images).
        download: allow downloading absent files.
        seed: shuffle seed.
        augment: random one-pixel shifts of the training images (digits only).
        pin_memory: page-locked batches, for a CUDA run (the trainer then copies them without
            blocking).
        num_workers: DataLoader worker processes per loader (0: load in the main process).
            Event datasets are binned once and cached on disk (see :func:`neuromorphic`), so
            workers mostly help the torchvision sets and the first epoch of an event set.

    Returns:
        A :class:`DataBundle`.
    """
    if name == "digits":
        return digits(
            batch_size,
            test_batch_size,
            seed=seed,
            augment=augment,
            pin_memory=pin_memory,
            num_workers=num_workers,
        )
    if name not in VISION and name not in NEUROMORPHIC:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(names())}")
    if data_dir is None:
        raise DatasetNotFoundError(f"dataset {name!r} needs a data directory (CLI: --data-dir DIR)")
    if name in VISION:
        return vision(
            name,
            data_dir,
            batch_size,
            test_batch_size,
            download=download,
            seed=seed,
            pin_memory=pin_memory,
            num_workers=num_workers,
        )
    return neuromorphic(
        name,
        data_dir,
        T,
        batch_size,
        test_batch_size,
        download=download,
        seed=seed,
        pin_memory=pin_memory,
        num_workers=num_workers,
    )
