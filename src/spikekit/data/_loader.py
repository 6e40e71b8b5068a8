"""Loader plumbing shared by every dataset: samplers that follow torch.distributed, and errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["DatasetNotFoundError", "DataBundle", "ShardSampler", "make_loader", "dist_info"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message says where it was looked for and how to get it."""


@dataclass
class DataBundle:
    """Train/test loaders plus what a model needs to know about the data.

    Attributes:
        train: training loader.
        test: test loader.
        num_classes: number of target classes.
        in_channels: channels of one sample (``C`` of ``[C, H, W]``; features for 1-D data).
        input_size: spatial size ``(H, W)`` (or ``(F,)`` for 1-D data).
        temporal: ``True`` when batches are already ``[T, B, ...]`` (event data); ``False`` for
            static ``[B, C, H, W]`` samples that an encoder turns into ``[T, B, ...]``.
        name: dataset name.
    """

    train: DataLoader
    test: DataLoader
    num_classes: int
    in_channels: int
    input_size: tuple[int, ...]
    temporal: bool
    name: str


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the active torch.distributed group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardSampler(Sampler[int]):
    """Deterministic, un-padded split of a dataset across ranks (``rank::world``) for evaluation.

    ``DistributedSampler`` pads the last shard with repeated samples, which would count some
    test samples twice; evaluation sums correct/total over ranks, so it needs exact shards.
    """

    def __init__(self, data: Sized, rank: int, world: int) -> None:
        self.n, self.rank, self.world = len(data), rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose order depends only on ``(seed, epoch)``, sharded under torch.distributed.

    Training always uses a :class:`~torch.utils.data.DistributedSampler` (with one replica when no
    process group is active): its shuffle is a pure function of ``seed + epoch`` (the trainer
    calls ``set_epoch``), so a resumed run sees the same batches as an uninterrupted one, and
    ``world`` processes with batch ``b`` see exactly the samples of one process with batch
    ``world * b``. The loader gets its own generator so iterating it never consumes the global
    RNG (which is checkpointed for dropout / Poisson encoding).

    Args:
        dataset: a map-style dataset.
        batch_size: samples per batch *per process*.
        train: shuffle (training) or keep order (evaluation, un-padded shards).
        seed: shuffle seed.
        collate_fn: optional collate function.
        num_workers: DataLoader worker processes (kept alive across epochs when > 0).
        drop_last: drop a last incomplete batch.
        pin_memory: return batches in page-locked memory (for a CUDA run: the copy to the GPU can
            then overlap compute).

    Returns:
        The DataLoader.
    """
    from torch.utils.data import DistributedSampler

    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    rank, world = dist_info()
    sampler: Sampler[int]
    if train:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    else:
        sampler = ShardSampler(dataset, rank, world)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        # Workers persist across epochs: re-spawning them (and re-opening tonic/torchvision
        # files) every epoch costs seconds; the sampler still reshuffles in the main process.
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )
