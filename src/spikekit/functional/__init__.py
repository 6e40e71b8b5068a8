"""Pure functional API: step functions and the time loop."""

from spikekit.kernels.reference import scan, scan_trace
from spikekit.neurons.alif import alif_step
from spikekit.neurons.cuba_lif import cuba_lif_step
from spikekit.neurons.if_ import if_step
from spikekit.neurons.li import li_step
from spikekit.neurons.lif import lif_step

__all__ = ["scan", "scan_trace", "if_step", "lif_step", "cuba_lif_step", "alif_step", "li_step"]
