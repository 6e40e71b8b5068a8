"""Layers over time: time-folding, normalisation and dropout over time, recurrence, pooling,
residual blocks and readouts. Inputs are time-first ``[T, B, *features]``."""

from spikeforge.layers.dropout import SequenceDropout
from spikeforge.layers.norm import BNTT2d, TdBatchNorm2d
from spikeforge.layers.readout import LILinear
from spikeforge.layers.recurrent import Recurrent, RecurrentState
from spikeforge.layers.residual import CONNECT, Residual
from spikeforge.layers.time_distributed import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Flatten,
    MaxPool2d,
    TimeDistributed,
)

__all__ = [
    "CONNECT",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BNTT2d",
    "Flatten",
    "LILinear",
    "MaxPool2d",
    "Recurrent",
    "RecurrentState",
    "Residual",
    "SequenceDropout",
    "TdBatchNorm2d",
    "TimeDistributed",
]
