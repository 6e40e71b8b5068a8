"""Event datasets through tonic (N-MNIST, DVS Gesture, SHD), binned into frames ``[T, B, ...]``.

tonic reads each dataset's own on-disk format (N-MNIST ``.bin`` event files, DVS Gesture
``.npy`` recordings, SHD ``.h5``); ``tonic.transforms.ToFrame`` bins the events into ``T``
equal time bins. A batch is ``([T, B, *frame], [B])``.

The binned frames are cached on disk with tonic's ``DiskCachedDataset`` (one HDF5 file per
sample under ``<data_dir>/cache/<name>-T<T>/``), so events are binned once, not every epoch.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from spikekit.data._loader import DataBundle, DatasetNotFoundError, make_loader

__all__ = ["neuromorphic", "NEUROMORPHIC", "collate_frames"]

# name -> (tonic class, path(s) relative to data_dir that must exist for (train, test), classes, hint)
NEUROMORPHIC: dict[str, tuple[str, tuple[str, str], int, str]] = {
    "nmnist": ("NMNIST", ("NMNIST/Train", "NMNIST/Test"), 10, "N-MNIST (extract train.zip / test.zip)"),
    "dvsgesture": (
        "DVSGesture",
        ("DVSGesture/ibmGestureTrain", "DVSGesture/ibmGestureTest"),
        11,
        "DVS Gesture (tonic's preprocessed .npy archive)",
    ),
    "shd": (
        "SHD",
        ("SHD/shd_train.h5", "SHD/shd_test.h5"),
        20,
        "SHD (unzip shd_train.h5.zip / shd_test.h5.zip)",
    ),
}


def collate_frames(batch: list[tuple[Any, Any]]) -> tuple[Tensor, Tensor]:
    """Stack ``(frames [T, *frame], label)`` samples into ``([T, B, *frame] float32, [B] int64)``."""
    xs = torch.stack([torch.as_tensor(f, dtype=torch.float32) for f, _ in batch], dim=1)
    ys = torch.as_tensor([int(t) for _, t in batch], dtype=torch.int64)
    return xs, ys


class _Frames:
    """``ToFrame`` binning; 1-D sensors (SHD) get a unit height so every sample is ``[T, C, H, W]``."""

    def __init__(self, to_frame: Any, one_d: bool) -> None:
        self.to_frame, self.one_d = to_frame, one_d

    def __call__(self, events: Any) -> Any:
        f = self.to_frame(events)
        return f[:, :, None, :] if self.one_d else f


def _local(cls: type) -> type:
    # tonic's own presence check wants the downloaded archive kept next to a full-size folder
    # (e.g. 10000 N-MNIST files) and otherwise starts a download. We check for the extracted
    # files ourselves (with a clear error), so this subclass only skips that check; it keeps
    # the class name because tonic derives the folder name from it.
    return type(cls.__name__, (cls,), {"_check_exists": lambda self: True})


def neuromorphic(
    name: str,
    data_dir: str,
    T: int,
    batch_size: int = 32,
    test_batch_size: int = 64,
    *,
    download: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    cache: bool = True,
    cache_dir: str | None = None,
) -> DataBundle:
    """N-MNIST, DVS Gesture or SHD through tonic, binned into ``T`` frames per sample.

    Args:
        name: ``"nmnist"``, ``"dvsgesture"`` or ``"shd"``.
        data_dir: tonic's ``save_to`` directory (holding ``NMNIST/``, ``DVSGesture/`` or ``SHD/``).
        T: number of time bins per sample.
        batch_size: training batch size (per process). test_batch_size: evaluation batch size.
        download: let tonic download the archives when absent.
        seed: shuffle seed. num_workers: loader workers.
        pin_memory: page-locked batches (for a CUDA run).
        cache: keep the binned frames on disk (tonic's ``DiskCachedDataset``): the first epoch
            bins and writes each sample, later epochs (and later runs with the same ``T``) read
            the frames back. Delete the folder after changing the raw files.
        cache_dir: where the cache goes (default ``<data_dir>/cache``); one subfolder per
            dataset, ``T`` and split.

    Returns:
        A :class:`DataBundle` with ``temporal=True``; batches ``([T, B, C, H, W], [B])`` (SHD:
        ``C, H, W = 1, 1, 700``).

    Raises:
        DatasetNotFoundError: the extracted files are absent and ``download`` is False.
    """
    import tonic

    if name not in NEUROMORPHIC:
        raise ValueError(f"unknown event dataset {name!r}; expected one of {', '.join(NEUROMORPHIC)}")
    if not (isinstance(T, int) and T > 0):
        raise ValueError(f"T must be a positive int, got {T!r}")
    cls_name, paths, n_cls, hint = NEUROMORPHIC[name]
    base = getattr(tonic.datasets, cls_name)
    if not download:
        absent = [p for p in paths if not os.path.exists(os.path.join(data_dir, p))]
        if absent:
            raise DatasetNotFoundError(
                f"{name} not found: looked for {', '.join(paths)} under {os.path.abspath(data_dir)!r}; "
                f"get {hint} with download=True (CLI: --download) on a machine with internet access"
            )
    cls = base if download else _local(base)
    w, h, p = base.sensor_size
    # ToFrame gives [T, p, h, w] for 2-D sensors and [T, p, w] for SHD's 700 x 1 x 1 "sensor".
    to_frame = _Frames(tonic.transforms.ToFrame(sensor_size=base.sensor_size, n_time_bins=T), one_d=h == 1)
    train_ds: Any = cls(data_dir, train=True, transform=to_frame)
    test_ds: Any = cls(data_dir, train=False, transform=to_frame)
    if cache:
        # The key is everything the frames depend on besides the raw files: dataset and T.
        root = os.path.join(cache_dir or os.path.join(data_dir, "cache"), f"{name}-T{T}")
        train_ds = tonic.DiskCachedDataset(train_ds, cache_path=os.path.join(root, "train"))
        test_ds = tonic.DiskCachedDataset(test_ds, cache_path=os.path.join(root, "test"))
    return DataBundle(
        train=make_loader(
            train_ds,
            batch_size,
            train=True,
            seed=seed,
            collate_fn=collate_frames,
            num_workers=num_workers,
            pin_memory=pin_memory,
        ),
        test=make_loader(
            test_ds,
            test_batch_size,
            train=False,
            collate_fn=collate_frames,
            num_workers=num_workers,
            pin_memory=pin_memory,
        ),
        num_classes=n_cls,
        in_channels=p,
        input_size=(h, w),
        temporal=True,
        name=name,
    )
