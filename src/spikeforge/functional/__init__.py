"""Pure functional API: step functions and the time loop."""

from spikeforge.functional.scan import scan, scan_trace
from spikeforge.neurons.alif import alif_step
from spikeforge.neurons.cuba_lif import cuba_lif_step
from spikeforge.neurons.if_ import if_step
from spikeforge.neurons.li import li_step
from spikeforge.neurons.lif import lif_step

__all__ = ["scan", "scan_trace", "if_step", "lif_step", "cuba_lif_step", "alif_step", "li_step"]
